// Package enroll is the browser portal: the owner console (sub-accounts,
// phone verification, certificate protection, devices, records) and the
// staff enrollment page, where the key pair, the CSR and the PKCS#12 are
// made in the browser and only the CSR reaches the server.
package enroll

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/routetable"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

// Options configure a Portal.
type Options struct {
	Store   store.Store
	Issuer  Issuer
	Catalog *config.Catalog
	// ProxyURL is the mTLS gateway's origin: "check installation" calls its
	// /.well-known/devicegate/whoami (and the CSP allows exactly that).
	ProxyURL string
	// CookieKey signs the "known browser" cookie that spares staff the TOTP
	// code on a browser that already passed it (32 bytes, kept across
	// restarts).
	CookieKey []byte
	Log       *slog.Logger
	Now       func() time.Time // nil: time.Now
	// Verifier decides real-person verifications (nil: ManualVerifier, the
	// owner approves); VerifyCallbackKey (at least 32 bytes) enables the
	// identity provider's signed callback (verify_callback.go).
	Verifier          Verifier
	VerifyCallbackKey []byte
	// TrustDomain is the CA's (device certificates' URIs) and DeviceCAs
	// returns its device intermediates in use now (they change with a
	// rotation): the owner's own certificate is checked against both
	// (ownercert.go; nil DeviceCAs or pool: none is ever valid).
	TrustDomain string
	DeviceCAs   func() *x509.CertPool
	// OwnerConsoleURL is the owner-console listener's address (the one
	// that asks for the owner's certificate), shown where an owner page
	// needs the certificate; "" when there is none.
	OwnerConsoleURL string
}

// Portal is the portal's HTTP handler.
type Portal struct {
	opts      Options
	mux       *http.ServeMux
	sessions  *sessions
	limits    loginLimits // login lockouts, counted in the store
	pages     *pages
	proxyOrig string
	// dummyHash is verified when an account does not exist, so a wrong
	// store or name costs the same time as a wrong password.
	dummyHash func() string
}

// Form and upload bounds: anything larger is refused with 413 before it
// is parsed.
const (
	maxFormBytes = 64 << 10
	maxCSRBody   = 32 << 10
)

// New checks the options and builds the handler.
func New(o Options) (*Portal, error) {
	if o.Store == nil || o.Issuer == nil || o.Catalog == nil || o.Log == nil {
		return nil, errors.New("enroll: store, issuer, catalog and log are required")
	}
	if len(o.CookieKey) < 32 {
		return nil, errors.New("enroll: cookie key must have at least 32 bytes")
	}
	if o.VerifyCallbackKey != nil && len(o.VerifyCallbackKey) < 32 {
		return nil, errors.New("enroll: verification callback key must have at least 32 bytes")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	origin := ""
	if o.ProxyURL != "" {
		u, err := url.Parse(o.ProxyURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("enroll: proxy URL %q must be an https URL", o.ProxyURL)
		}
		origin = u.Scheme + "://" + u.Host
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	p := &Portal{opts: o, mux: http.NewServeMux(), sessions: newSessions(o.Store, o.Now, o.Log), pages: pg, proxyOrig: origin,
		limits: newLoginLimits(o.Store, o.Log)}
	p.dummyHash = sync.OnceValue(func() string {
		h, err := secrets.HashPassword(randomToken())
		if err != nil {
			panic(err)
		}
		return h
	})
	p.routes(p.mux)
	return p, nil
}

func (p *Portal) routes(m routetable.Router) {
	m.HandleFunc("GET /{$}", p.index)
	m.HandleFunc("GET /lang", p.switchLang)
	m.Handle("GET /static/", staticHandler())
	m.HandleFunc("POST /logout", p.post(p.logout))

	m.HandleFunc("GET /owner/login", p.ownerLoginPage)
	m.HandleFunc("POST /owner/login", p.post(p.ownerLogin))
	m.HandleFunc("GET /owner/totp", p.ownerTOTPPage)
	m.HandleFunc("POST /owner/totp", p.post(p.ownerTOTP))
	m.HandleFunc("GET /owner/{$}", p.owner(p.subsPage))
	m.HandleFunc("POST /owner/subs", p.post(p.owner(p.createSub)))
	m.HandleFunc("GET /owner/subs/{id}", p.owner(p.subPage))
	m.HandleFunc("POST /owner/subs/{id}/phone", p.post(p.owner(p.enablePhone)))
	m.HandleFunc("POST /owner/subs/{id}/protection", p.post(p.owner(p.setProtection)))
	m.HandleFunc("POST /owner/subs/{id}/status", p.post(p.owner(p.setStatus)))
	m.HandleFunc("POST /owner/subs/{id}/revoke-all", p.post(p.owner(p.revokeAll)))
	m.HandleFunc("POST /owner/subs/{id}/devices/{dev}/revoke", p.post(p.owner(p.ownerRevokeDevice)))
	m.HandleFunc("POST /owner/subs/{id}/devices/{dev}/allow-renew", p.post(p.owner(p.ownerAllowRenew)))
	m.HandleFunc("POST /owner/subs/{id}/window", p.post(p.owner(p.setWindow)))
	m.HandleFunc("POST /owner/subs/{id}/role", p.post(p.owner(p.setSubRole)))
	m.HandleFunc("GET /owner/positions", p.owner(p.positionsPage))
	m.HandleFunc("POST /owner/positions/{role}", p.post(p.owner(p.editPosition)))
	m.HandleFunc("GET /owner/audit", p.owner(p.auditPage))
	m.HandleFunc("GET /owner/audit.csv", p.owner(p.auditCSV))

	m.HandleFunc("GET /staff/login", p.staffLoginPage)
	m.HandleFunc("POST /staff/login", p.post(p.staffLogin))
	m.HandleFunc("GET /staff/totp", p.staffTOTPPage)
	m.HandleFunc("POST /staff/totp", p.post(p.staffTOTP))
	m.HandleFunc("GET /staff/{$}", p.staff(p.staffHome))
	m.HandleFunc("GET /staff/enroll", p.staff(p.enrollPage))
	m.HandleFunc("POST /staff/api/enroll", p.post(p.staff(p.enrollAPI)))
	m.HandleFunc("POST /staff/devices/{dev}/revoke", p.post(p.staff(p.staffRevokeDevice)))
	m.HandleFunc("GET /staff/devices/{dev}/renew", p.staff(p.renewPage))
	m.HandleFunc("POST /staff/api/devices/{dev}/renew", p.post(p.staff(p.renewAPI)))
	p.verifyRoutes(m)
	p.ownerCertRoutes(m)
}

// ServeHTTP adds the security headers every response carries.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	connect := "'self'"
	if p.proxyOrig != "" {
		connect += " " + p.proxyOrig
	}
	// No inline script or style anywhere: scripts and styles come from
	// /static only.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src "+connect+"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which the origin check must refuse.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	p.mux.ServeHTTP(w, r)
}

// post guards every state-changing request: a bounded body, and an Origin
// (when the browser sends one) that is this portal. The CSRF token itself
// is checked by the handler's session or login form.
func (p *Portal) post(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host {
			p.fail(w, r, http.StatusForbidden, "err_csrf")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				p.fail(w, r, http.StatusRequestEntityTooLarge, "err_input")
				return
			}
			p.fail(w, r, http.StatusBadRequest, "err_input")
			return
		}
		next(w, r)
	}
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// owner and staff require a completed login of that kind; a POST also
// needs the session's CSRF token (form field or X-CSRF-Token header).
func (p *Portal) owner(next sessionHandler) http.HandlerFunc {
	return p.require(kindOwner, "/owner/login", p.ownerCertGate(next))
}

func (p *Portal) staff(next sessionHandler) http.HandlerFunc {
	return p.require(kindStaff, "/staff/login", p.staffInWindow(next))
}

func (p *Portal) require(kind, login string, next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, r := p.loadSession(r)
		if s == nil || s.kind != kind || s.step != stepDone {
			if r.Method == http.MethodGet {
				redirect(w, login)
				return
			}
			p.fail(w, r, http.StatusUnauthorized, "err_csrf")
			return
		}
		if r.Method == http.MethodPost {
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				token = r.PostFormValue("csrf")
			}
			if !sameToken(token, s.csrf) {
				p.fail(w, r, http.StatusForbidden, "err_csrf")
				return
			}
		}
		next(w, r, s)
	}
}

// clientIP is the TCP peer: the portal is not behind a proxy it trusts.
func clientIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// actor records who did something, for the audit log.
func actor(r *http.Request, s *session) store.Actor {
	kind := "owner"
	if s.kind == kindStaff {
		kind = "sub"
	}
	return store.Actor{Kind: kind, Name: s.name, IP: clientIP(r), UA: truncateUA(r.UserAgent())}
}

func truncateUA(ua string) string {
	if len(ua) > 256 {
		return ua[:256]
	}
	return ua
}

func (p *Portal) index(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "index", view{})
}

func (p *Portal) switchLang(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	if to != "zh" {
		to = "en"
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: to, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	redirect(w, r.URL.Query().Get("back"))
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	s, r := p.loadSession(r)
	if s == nil || !sameToken(r.PostFormValue("csrf"), s.csrf) {
		p.fail(w, r, http.StatusForbidden, "err_csrf")
		return
	}
	p.sessions.end(w, r)
	if s.step == stepDone {
		action := "owner.logout"
		if s.kind == kindStaff {
			action = "sub.logout"
		}
		p.audit(r, s.tenantID, actor(r, s), action, s.name, "ok")
	}
	redirect(w, "/")
}
