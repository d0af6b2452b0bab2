package enroll

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Session cookie: __Host- (Secure, Path=/, no Domain), HttpOnly and
// SameSite=Strict, so no other site can send it along.
const sessionCookie = "__Host-dg_session"

// Session kinds and the step a session is at.
const (
	kindOwner = "owner"
	kindStaff = "staff"

	stepDone      = ""           // fully logged in
	stepTOTP      = "totp"       // password ok, waiting for the TOTP code
	stepTOTPSetup = "totp_setup" // owner without TOTP: must set it up first
)

// session is server-side state; the cookie holds only a random id.
type session struct {
	id       string
	kind     string
	tenantID string
	subID    string // staff only
	name     string // "store" for owners, "store:name" for staff
	csrf     string
	step     string
	secret   string // otpauth URL of the owner TOTP being set up, until confirmed
	created  time.Time
	seen     time.Time
}

// sessions holds the portal's sessions in memory: one portal process per
// data directory (several portals behind a balancer need sticky sessions).
type sessions struct {
	mu       sync.Mutex
	m        map[string]*session
	idle     time.Duration
	absolute time.Duration
	max      int
	now      func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, idle: 30 * time.Minute, absolute: 12 * time.Hour, max: 100_000, now: now}
}

// randomToken is 32 random bytes, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// start replaces the request's session (if any) with a fresh one: a new id
// and CSRF token at every login step, so a planted id is worthless.
func (s *sessions) start(w http.ResponseWriter, r *http.Request, fill func(*session)) *session {
	now := s.now()
	sess := &session{id: randomToken(), csrf: randomToken(), created: now, seen: now}
	fill(sess)
	s.mu.Lock()
	if c, err := r.Cookie(sessionCookie); err == nil {
		delete(s.m, c.Value)
	}
	if len(s.m) >= s.max {
		s.sweepLocked(now)
	}
	if len(s.m) >= s.max {
		// Fail closed: the oldest session makes room rather than the map
		// growing without bound.
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.seen.Before(oldest.seen) {
				oldest = o
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[sess.id] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	return sess
}

// get returns the request's live session, or nil.
func (s *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[c.Value]
	if sess == nil {
		return nil
	}
	if now.Sub(sess.seen) > s.idle || now.Sub(sess.created) > s.absolute {
		delete(s.m, sess.id)
		return nil
	}
	sess.seen = now
	cp := *sess
	return &cp
}

// end logs the request's session out.
func (s *sessions) end(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.m, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// endAll logs out every session of one sub-account (or owner when subID
// is ""), e.g. when the owner marks the sub-account departed.
func (s *sessions) endAll(tenantID, subID string) {
	s.mu.Lock()
	for id, sess := range s.m {
		if sess.tenantID == tenantID && sess.subID == subID {
			delete(s.m, id)
		}
	}
	s.mu.Unlock()
}

func (s *sessions) sweepLocked(now time.Time) {
	for id, sess := range s.m {
		if now.Sub(sess.seen) > s.idle || now.Sub(sess.created) > s.absolute {
			delete(s.m, id)
		}
	}
}

// sameToken compares tokens in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
