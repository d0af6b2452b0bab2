package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// newSession is a staff session of sub (owner's when sub is nil) created at
// now, 30 minutes idle, 12 hours at most.
func (e *env) newSession(id string, sub *store.SubAccount, now time.Time) store.Session {
	h := sha256.Sum256([]byte(id))
	s := store.Session{Hash: h[:], Kind: "owner", TenantID: e.tenant.ID, Name: e.tenant.Name, CSRF: "csrf-" + id,
		CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(12 * time.Hour), Idle: 30 * time.Minute}
	if sub != nil {
		s.Kind, s.SubID, s.Name = "staff", sub.ID, sub.FullName()
	}
	return s
}

// Sessions: round trip with a sealed secret, the idle and absolute ends,
// replacement at the next login step, logout, and ending every session of
// one account (and only those).
func testSessions(t *testing.T, e *env) {
	alice, bob := e.mustSub(e.tenant, "alice"), e.mustSub(e.tenant, "bob")
	now := time.Now().UTC().Truncate(time.Microsecond)
	get := func(s store.Session, at time.Time) (store.Session, error) {
		return e.st.GetSession(e.ctx, s.Hash, at)
	}

	owner := e.newSession("owner-1", nil, now)
	owner.Step, owner.Secret = "totp_setup", []byte("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP")
	if err := e.st.CreateSession(e.ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	got, err := get(owner, now.Add(time.Second))
	if err != nil || got.Kind != "owner" || got.SubID != "" || got.Step != "totp_setup" || !bytes.Equal(got.Secret, owner.Secret) ||
		got.CSRF != owner.CSRF || !got.CreatedAt.Equal(now) || !got.ExpiresAt.Equal(owner.ExpiresAt) || got.Idle != owner.Idle {
		t.Fatalf("round trip: %+v %v", got, err)
	}

	// The next login step replaces the session: the old id is worthless.
	done := e.newSession("owner-2", nil, now)
	if err := e.st.CreateSession(e.ctx, done, owner.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := get(owner, now); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("replaced session: %v", err)
	}
	if got, err := get(done, now); err != nil || got.Secret != nil || got.Step != "" {
		t.Fatalf("replacing session: %+v %v", got, err)
	}

	// Use keeps a session alive past its idle time; no use ends it.
	a := e.newSession("alice-1", &alice, now)
	if err := e.st.CreateSession(e.ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	for at := now.Add(20 * time.Minute); at.Before(now.Add(80 * time.Minute)); at = at.Add(20 * time.Minute) {
		if _, err := get(a, at); err != nil {
			t.Fatalf("used every 20 min, at %v: %v", at.Sub(now), err)
		}
	}
	if _, err := get(a, now.Add(60*time.Minute+31*time.Minute)); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("idle 31 min: %v", err)
	}
	if _, err := get(a, now.Add(60*time.Minute)); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("an ended session came back: %v", err)
	}

	// The absolute end holds however often the session is used.
	b := e.newSession("bob-1", &bob, now)
	b.ExpiresAt = now.Add(time.Hour)
	if err := e.st.CreateSession(e.ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	for at := now.Add(15 * time.Minute); at.Before(now.Add(time.Hour)); at = at.Add(15 * time.Minute) {
		if _, err := get(b, at); err != nil {
			t.Fatalf("bob at %v: %v", at.Sub(now), err)
		}
	}
	if _, err := get(b, now.Add(time.Hour)); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("past the absolute end: %v", err)
	}

	// Ending an account's sessions leaves the others.
	a2, a3, b2 := e.newSession("alice-2", &alice, now), e.newSession("alice-3", &alice, now), e.newSession("bob-2", &bob, now)
	for _, s := range []store.Session{a2, a3, b2} {
		if err := e.st.CreateSession(e.ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.DeleteSessions(e.ctx, e.tenant.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.Session{a2, a3} {
		if _, err := get(s, now); !errors.Is(err, store.ErrSessionUnknown) {
			t.Fatalf("alice's session after DeleteSessions: %v", err)
		}
	}
	for _, s := range []store.Session{b2, done} {
		if _, err := get(s, now); err != nil {
			t.Fatalf("another account's session after DeleteSessions: %v", err)
		}
	}
	// Logout.
	if err := e.st.DeleteSession(e.ctx, b2.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := get(b2, now); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("after logout: %v", err)
	}

	// Bad input changes nothing.
	bad := []store.Session{
		{Hash: []byte("short"), Kind: "owner", TenantID: e.tenant.ID, CSRF: "x", CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(time.Hour), Idle: time.Minute},
		func() store.Session { s := e.newSession("k", nil, now); s.Kind = "admin"; return s }(),
		func() store.Session { s := e.newSession("c", nil, now); s.CSRF = ""; return s }(),
		func() store.Session { s := e.newSession("i", nil, now); s.Idle = 0; return s }(),
		func() store.Session { s := e.newSession("x", nil, now); s.ExpiresAt = now; return s }(),
	}
	for i, s := range bad {
		if err := e.st.CreateSession(e.ctx, s, done.Hash); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("bad session %d: %v", i, err)
		}
	}
	if _, err := get(done, now); err != nil {
		t.Fatalf("a refused CreateSession removed the session it would replace: %v", err)
	}
	if err := e.st.CreateSession(e.ctx, done, nil); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("the same id twice: %v", err)
	}
}
