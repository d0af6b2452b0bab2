package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/devicegate/devicegate/store"
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
}

// sessions keeps the portal's sessions in the store, so every portal node
// sees the same ones and a restart logs nobody out. The cookie holds a
// random id; the store only its SHA-256.
type sessions struct {
	st       store.Store
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
	log      *slog.Logger
}

func newSessions(st store.Store, now func() time.Time, log *slog.Logger) *sessions {
	return &sessions{st: st, idle: 30 * time.Minute, absolute: 12 * time.Hour, now: now, log: log}
}

// randomToken is 32 random bytes, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionHash(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// start replaces the request's session (if any) with a fresh one: a new id
// and CSRF token at every login step, so a planted id is worthless. On an
// error nothing changed and no cookie was set.
func (s *sessions) start(w http.ResponseWriter, r *http.Request, fill func(*session)) error {
	now := s.now()
	sess := &session{id: randomToken(), csrf: randomToken()}
	fill(sess)
	var replaces []byte
	if c, err := r.Cookie(sessionCookie); err == nil {
		replaces = sessionHash(c.Value)
	}
	var secret []byte
	if sess.secret != "" {
		secret = []byte(sess.secret)
	}
	err := s.st.CreateSession(r.Context(), store.Session{
		Hash: sessionHash(sess.id), Kind: sess.kind, TenantID: sess.tenantID, SubID: sess.subID, Name: sess.name,
		CSRF: sess.csrf, Step: sess.step, Secret: secret, CreatedAt: now, SeenAt: now,
		ExpiresAt: now.Add(s.absolute), Idle: s.idle,
	}, replaces)
	if err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	return nil
}

// get returns the request's live session, or nil (also when the store
// cannot answer: fail closed).
func (s *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	se, err := s.st.GetSession(r.Context(), sessionHash(c.Value), s.now())
	if err != nil {
		if !errors.Is(err, store.ErrSessionUnknown) {
			s.log.Error("read session", "err", err)
		}
		return nil
	}
	return &session{id: c.Value, kind: se.Kind, tenantID: se.TenantID, subID: se.SubID, name: se.Name, csrf: se.CSRF,
		step: se.Step, secret: string(se.Secret)}
}

// end logs the request's session out.
func (s *sessions) end(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.st.DeleteSession(r.Context(), sessionHash(c.Value)); err != nil {
			s.log.Error("end session", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// endAll logs out every session of one sub-account (or owner when subID
// is ""), e.g. when the owner marks the sub-account departed.
func (s *sessions) endAll(ctx context.Context, tenantID, subID string) error {
	return s.st.DeleteSessions(ctx, tenantID, subID)
}

// sameToken compares tokens in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
