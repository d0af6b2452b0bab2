package enroll

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

// Login forms have no session yet: their CSRF token is a double-submit
// cookie (SameSite=Strict, __Host-) that the form repeats.
const preCookie = "__Host-dg_pre"

func (p *Portal) loginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) >= 40 {
		return c.Value
	}
	t := randomToken()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: t, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return t
}

func loginTokenOK(r *http.Request) bool {
	c, err := r.Cookie(preCookie)
	return err == nil && sameToken(r.PostFormValue("csrf"), c.Value)
}

// audit records a login event; errors are logged (the login itself has
// already been decided).
func (p *Portal) audit(r *http.Request, tenantID string, a store.Actor, action, target, outcome string) {
	a.IP, a.UA = clientIP(r), truncateUA(r.UserAgent())
	if _, err := p.opts.Store.AppendAudit(r.Context(), tenantID, store.AuditEntry{Time: p.opts.Now(), Actor: a, Action: action,
		Target: target, Outcome: outcome}); err != nil {
		p.opts.Log.Error("audit write failed", "action", action, "err", err)
	}
}

func (p *Portal) ownerLoginPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "owner_login", view{CSRF: p.loginToken(w, r)})
}

// beginLogin is the start both login forms share: the pre-login CSRF
// token, then the lockout (lockout.go). A refused client may send its TOTP
// code with the password: unlock is then true. again answers with page and
// an error message (and the code field after a refusal); ok is false when
// the answer has been written.
func (p *Portal) beginLogin(w http.ResponseWriter, r *http.Request, page, account string) (again func(status int, key string), a attempt, unlock, ok bool) {
	again = func(status int, key string) {
		v := view{CSRF: p.loginToken(w, r), Error: p.text(r, key)}
		if status == http.StatusTooManyRequests || key == "err_unlock" {
			v.Data = loginForm{AskCode: true}
		}
		p.render(w, r, status, page, v)
	}
	if !loginTokenOK(r) {
		again(http.StatusForbidden, "err_csrf")
		return again, a, false, false
	}
	a = p.newAttempt(r, account)
	admitted, err := p.admit(r.Context(), a)
	if err != nil {
		p.unavailable(again, "login lockout", err)
		return again, a, false, false
	}
	if admitted {
		return again, a, false, true
	}
	if r.PostFormValue("code") == "" {
		again(http.StatusTooManyRequests, "err_locked_login")
		return again, a, false, false
	}
	if allowed, err := p.unlockAllowed(r.Context(), a); err != nil || !allowed {
		if err != nil {
			p.unavailable(again, "login unlock", err)
		} else {
			again(http.StatusTooManyRequests, "err_locked_login")
		}
		return again, a, false, false
	}
	return again, a, true, true
}

// unavailable answers a login step the store could not check: 503 and
// "try again later". Nothing is counted against the user or the client
// (the store is down, not the password wrong), and nobody is let in.
func (p *Portal) unavailable(again func(status int, key string), step string, err error) {
	p.opts.Log.Error(step+": the store cannot answer", "err", err)
	again(http.StatusServiceUnavailable, "err_internal")
}

// unknownAccount: a lookup error that means "no such account" (a wrong
// password, as far as the user is told), not a store fault.
func unknownAccount(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid)
}

// codeRefused: a TOTP check error that is the code's fault (wrong, or
// already used), not the store's.
func codeRefused(err error) bool {
	return errors.Is(err, errBadCode) || errors.Is(err, store.ErrCodeReused)
}

// loginForm is the login page's data: AskCode shows the TOTP code field.
type loginForm struct{ AskCode bool }

func (p *Portal) ownerLogin(w http.ResponseWriter, r *http.Request) {
	storeName := strings.TrimSpace(r.PostFormValue("store"))
	account := "owner:" + storeName
	again, a, unlock, started := p.beginLogin(w, r, "owner_login", account)
	if !started {
		return
	}
	t, err := p.opts.Store.GetTenantByName(r.Context(), storeName)
	if err != nil && !unknownAccount(err) {
		p.unavailable(again, "owner login", err)
		return
	}
	hash := p.dummyHash()
	if err == nil && t.OwnerPasswordHash != "" {
		hash = t.OwnerPasswordHash
	}
	ok, _ := secrets.VerifyPassword(hash, r.PostFormValue("password"))
	ok = ok && err == nil && t.OwnerPasswordHash != ""
	if unlock {
		unlocked, uerr := p.tryUnlock(r, a, ok, t.ID, "", t.OwnerTOTPSecret)
		if uerr != nil {
			p.unavailable(again, "owner login", uerr)
			return
		}
		if !unlocked {
			if err == nil {
				p.audit(r, t.ID, store.Actor{Kind: "owner", Name: t.Name}, "owner.login", t.Name, "bad_unlock")
			}
			again(http.StatusUnauthorized, "err_unlock")
			return
		}
		p.ownerLoggedIn(w, r, t, again)
		return
	}
	if !ok {
		p.failedPassword(r.Context(), a)
		if err == nil {
			p.audit(r, t.ID, store.Actor{Kind: "owner", Name: t.Name}, "owner.login", t.Name, "bad_password")
		}
		again(http.StatusUnauthorized, "err_login")
		return
	}
	step := stepTOTP
	secret := ""
	if len(t.OwnerTOTPSecret) == 0 {
		// First login (e.g. after `devicegate demo`): bind a phone now.
		key, err := newTOTPKey("devicegate "+t.Name, t.Name+" (owner)")
		if err != nil {
			again(http.StatusInternalServerError, "err_internal")
			return
		}
		step, secret = stepTOTPSetup, key.String()
	}
	if err := p.sessions.start(w, r, func(s *session) {
		s.kind, s.tenantID, s.name, s.step, s.secret = kindOwner, t.ID, t.Name, step, secret
	}); err != nil {
		p.opts.Log.Error("owner login", "err", err)
		again(http.StatusInternalServerError, "err_internal")
		return
	}
	redirect(w, "/owner/totp")
}

func (p *Portal) ownerTOTPPage(w http.ResponseWriter, r *http.Request) {
	s, r := p.loadSession(r)
	if s == nil || s.kind != kindOwner || s.step == stepDone {
		redirect(w, "/owner/login")
		return
	}
	p.renderOwnerTOTP(w, r, s, http.StatusOK, "")
}

func (p *Portal) renderOwnerTOTP(w http.ResponseWriter, r *http.Request, s *session, status int, errKey string) {
	v := view{CSRF: s.csrf}
	if errKey != "" {
		v.Error = p.text(r, errKey)
	}
	if s.step == stepTOTPSetup {
		if key, err := otp.NewKeyFromURL(s.secret); err == nil {
			if e, err := enrollmentOf(key); err == nil {
				v.Data = e
			}
		}
	}
	p.render(w, r, status, "owner_totp", v)
}

func (p *Portal) ownerTOTP(w http.ResponseWriter, r *http.Request) {
	s, r := p.loadSession(r)
	if s == nil || s.kind != kindOwner || s.step == stepDone {
		redirect(w, "/owner/login")
		return
	}
	if !sameToken(r.PostFormValue("csrf"), s.csrf) {
		p.renderOwnerTOTP(w, r, s, http.StatusForbidden, "err_csrf")
		return
	}
	account := "owner-totp:" + s.tenantID
	again := func(status int, key string) { p.renderOwnerTOTP(w, r, s, status, key) }
	allowed, _, err := p.limits.totp.Check(r.Context(), account, p.opts.Now())
	if err != nil {
		p.unavailable(again, "owner TOTP", err)
		return
	}
	if !allowed {
		again(http.StatusTooManyRequests, "err_locked")
		return
	}
	t, err := p.opts.Store.GetTenant(r.Context(), s.tenantID)
	if err != nil {
		p.unavailable(again, "owner TOTP", err)
		return
	}
	secret := t.OwnerTOTPSecret
	if s.step == stepTOTPSetup {
		key, err := otp.NewKeyFromURL(s.secret)
		if err != nil {
			p.renderOwnerTOTP(w, r, s, http.StatusInternalServerError, "err_internal")
			return
		}
		secret = []byte(key.Secret())
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	if err := p.checkTOTP(r.Context(), t.ID, "", secret, code); err != nil {
		if !codeRefused(err) {
			p.unavailable(again, "owner TOTP", err)
			return
		}
		p.limits.totp.Fail(r.Context(), account, p.opts.Now())
		p.audit(r, t.ID, store.Actor{Kind: "owner", Name: t.Name}, "owner.login", t.Name, "bad_code")
		p.renderOwnerTOTP(w, r, s, http.StatusUnauthorized, totpMessage(err))
		return
	}
	if s.step == stepTOTPSetup {
		if err := p.opts.Store.SetOwnerLogin(r.Context(), t.ID, t.OwnerPasswordHash, secret,
			store.Actor{Kind: "owner", Name: t.Name, IP: clientIP(r), UA: truncateUA(r.UserAgent())}); err != nil {
			p.renderOwnerTOTP(w, r, s, http.StatusInternalServerError, "err_internal")
			return
		}
	}
	p.ownerLoggedIn(w, r, t, again)
}

// ownerLoggedIn completes an owner login whose password and TOTP code were
// right (on the TOTP step, or together as an unlock).
func (p *Portal) ownerLoggedIn(w http.ResponseWriter, r *http.Request, t store.Tenant, again func(status int, key string)) {
	p.limits.totp.Succeed(r.Context(), "owner-totp:"+t.ID)
	p.loggedIn(w, r, "owner:"+t.Name)
	if err := p.sessions.start(w, r, func(n *session) { n.kind, n.tenantID, n.name = kindOwner, t.ID, t.Name }); err != nil {
		p.opts.Log.Error("owner login", "err", err)
		again(http.StatusInternalServerError, "err_internal")
		return
	}
	p.audit(r, t.ID, store.Actor{Kind: "owner", Name: t.Name}, "owner.login", t.Name, "ok")
	redirect(w, "/owner/")
}

func (p *Portal) staffLoginPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "staff_login", view{CSRF: p.loginToken(w, r)})
}

func (p *Portal) staffLogin(w http.ResponseWriter, r *http.Request) {
	username := strings.TrimSpace(r.PostFormValue("username"))
	account := "sub:" + username
	again, a, unlock, started := p.beginLogin(w, r, "staff_login", account)
	if !started {
		return
	}
	storeName, subName, _ := strings.Cut(username, ":")
	var sub store.SubAccount
	t, err := p.opts.Store.GetTenantByName(r.Context(), storeName)
	if err == nil {
		sub, err = p.opts.Store.GetSubAccountByName(r.Context(), t.ID, subName)
	}
	if err != nil && !unknownAccount(err) {
		p.unavailable(again, "staff login", err)
		return
	}
	hash := p.dummyHash()
	if err == nil {
		hash = sub.PasswordHash
	}
	ok, _ := secrets.VerifyPassword(hash, r.PostFormValue("password"))
	ok = ok && err == nil
	if unlock {
		var secret []byte
		if sub.PhoneEnabled {
			secret = sub.TOTPSecret
		}
		unlocked, uerr := p.tryUnlock(r, a, ok, t.ID, sub.ID, secret)
		if uerr != nil {
			p.unavailable(again, "staff login", uerr)
			return
		}
		if !unlocked {
			if err == nil {
				p.audit(r, t.ID, store.Actor{Kind: "sub", Name: sub.FullName()}, "sub.login", sub.FullName(), "bad_unlock")
			}
			again(http.StatusUnauthorized, "err_unlock")
			return
		}
	} else if !ok {
		p.failedPassword(r.Context(), a)
		if err == nil {
			p.audit(r, t.ID, store.Actor{Kind: "sub", Name: sub.FullName()}, "sub.login", sub.FullName(), "bad_password")
		}
		again(http.StatusUnauthorized, "err_login")
		return
	}
	if sub.Status != store.StatusActive {
		p.audit(r, t.ID, store.Actor{Kind: "sub", Name: sub.FullName()}, "sub.login", sub.FullName(), "not_active")
		again(http.StatusForbidden, "err_not_allowed")
		return
	}
	if !sub.Window.Contains(p.opts.Now()) { // a temporary account outside its window
		p.audit(r, t.ID, store.Actor{Kind: "sub", Name: sub.FullName()}, "sub.login", sub.FullName(), "outside_window")
		again(http.StatusForbidden, "err_outside_window")
		return
	}
	if sub.VerifyFrozen {
		p.audit(r, t.ID, store.Actor{Kind: "sub", Name: sub.FullName()}, "sub.login", sub.FullName(), "not_verified")
		again(http.StatusForbidden, "err_verify_frozen")
		return
	}
	step := stepDone
	if sub.PhoneEnabled && !unlock && !p.knownBrowser(r, sub.ID) {
		step = stepTOTP
	}
	if unlock {
		p.limits.totp.Succeed(r.Context(), "sub-totp:"+sub.ID)
		p.rememberBrowser(w, sub.ID)
	}
	if err := p.sessions.start(w, r, func(s *session) {
		s.kind, s.tenantID, s.subID, s.name, s.step = kindStaff, t.ID, sub.ID, sub.FullName(), step
	}); err != nil {
		p.opts.Log.Error("staff login", "err", err)
		again(http.StatusInternalServerError, "err_internal")
		return
	}
	if step == stepTOTP {
		redirect(w, "/staff/totp")
		return
	}
	p.loggedIn(w, r, account)
	p.audit(r, t.ID, store.Actor{Kind: "sub", Name: sub.FullName()}, "sub.login", sub.FullName(), "ok")
	redirect(w, "/staff/")
}

func (p *Portal) staffTOTPPage(w http.ResponseWriter, r *http.Request) {
	s, r := p.loadSession(r)
	if s == nil || s.kind != kindStaff || s.step != stepTOTP {
		redirect(w, "/staff/login")
		return
	}
	p.render(w, r, http.StatusOK, "staff_totp", view{CSRF: s.csrf})
}

func (p *Portal) staffTOTP(w http.ResponseWriter, r *http.Request) {
	s, r := p.loadSession(r)
	if s == nil || s.kind != kindStaff || s.step != stepTOTP {
		redirect(w, "/staff/login")
		return
	}
	again := func(status int, key string) {
		p.render(w, r, status, "staff_totp", view{CSRF: s.csrf, Error: p.text(r, key)})
	}
	if !sameToken(r.PostFormValue("csrf"), s.csrf) {
		again(http.StatusForbidden, "err_csrf")
		return
	}
	account := "sub-totp:" + s.subID
	allowed, _, err := p.limits.totp.Check(r.Context(), account, p.opts.Now())
	if err != nil {
		p.unavailable(again, "staff TOTP", err)
		return
	}
	if !allowed {
		again(http.StatusTooManyRequests, "err_locked")
		return
	}
	sub, err := p.opts.Store.GetSubAccount(r.Context(), s.tenantID, s.subID)
	if err != nil {
		p.unavailable(again, "staff TOTP", err)
		return
	}
	if err := p.checkTOTP(r.Context(), s.tenantID, s.subID, sub.TOTPSecret, strings.TrimSpace(r.PostFormValue("code"))); err != nil {
		if !codeRefused(err) {
			p.unavailable(again, "staff TOTP", err)
			return
		}
		p.limits.totp.Fail(r.Context(), account, p.opts.Now())
		p.audit(r, s.tenantID, store.Actor{Kind: "sub", Name: s.name}, "sub.login", s.name, "bad_code")
		again(http.StatusUnauthorized, totpMessage(err))
		return
	}
	p.limits.totp.Succeed(r.Context(), account)
	p.loggedIn(w, r, "sub:"+s.name)
	p.rememberBrowser(w, s.subID)
	if err := p.sessions.start(w, r, func(n *session) {
		n.kind, n.tenantID, n.subID, n.name = kindStaff, s.tenantID, s.subID, s.name
	}); err != nil {
		p.opts.Log.Error("staff login", "err", err)
		again(http.StatusInternalServerError, "err_internal")
		return
	}
	p.audit(r, s.tenantID, store.Actor{Kind: "sub", Name: s.name}, "sub.login", s.name, "ok")
	redirect(w, "/staff/")
}

// A browser that passed the TOTP check for a sub-account is remembered for
// 90 days with a signed cookie (sub id, expiry, HMAC), so the code is
// asked the first time and on a new browser, as the seeds describe.
const (
	knownCookie = "__Host-dg_known"
	knownFor    = 90 * 24 * time.Hour
)

func (p *Portal) knownMAC(subID, expires string) string {
	m := hmac.New(sha256.New, p.opts.CookieKey)
	m.Write([]byte("devicegate-known-browser\n" + subID + "\n" + expires))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Portal) rememberBrowser(w http.ResponseWriter, subID string) {
	exp := strconv.FormatInt(p.opts.Now().Add(knownFor).Unix(), 10)
	http.SetCookie(w, &http.Cookie{Name: knownCookie, Value: subID + "." + exp + "." + p.knownMAC(subID, exp), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(knownFor / time.Second)})
}

func (p *Portal) knownBrowser(r *http.Request, subID string) bool {
	c, err := r.Cookie(knownCookie)
	if err != nil {
		return false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 || parts[0] != subID {
		return false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || p.opts.Now().Unix() > exp {
		return false
	}
	return hmac.Equal([]byte(parts[2]), []byte(p.knownMAC(subID, parts[1])))
}
