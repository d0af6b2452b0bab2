package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/secrets"
)

// Options configure a Gateway.
type Options struct {
	TrustDomain  string
	Upstreams    []config.Upstream
	Catalog      *config.Catalog
	Policy       *Policy
	MaxStaleness time.Duration
	EnrollURL    string
	Audit        *Auditor // may be nil
	Metrics      *Metrics // may be nil
	Log          *slog.Logger
	Transport    http.RoundTripper // upstream transport (nil: a tuned default per upstream)
	JWKSClient   *http.Client      // fetches JWKS URLs (nil: system roots, 5 s timeout)
	WriteStall   time.Duration     // a client reading no byte of a response this long is cut (0: DefaultWriteStall)
}

// Gateway is the proxy's HTTP handler.
type Gateway struct {
	opts       Options
	writeStall time.Duration
	byHost     map[string]*upstream
	certs      *certEncodings // RFC 9440 header values, for header binding
}

type upstream struct {
	cfg      config.Upstream
	hmacKey  []byte          // header binding
	signer   *identitySigner // header binding
	target   *url.URL
	basePath string // the upstream URL's escaped path, without a final "/"
	proxy    *httputil.ReverseProxy
	direct   *directForwarder // nil for https upstreams
	binder   sessionBinder
	perms    []config.PathPermission // longest path first
}

// identityPrefix names the gateway's own identity headers (the client's
// are stripped: see strippedFromClient).
const identityPrefix = "X-Devicegate-"

// NewGateway checks the upstreams against the catalog and builds the
// handler. Unknown permission points are a start-up error (fail closed).
func NewGateway(o Options) (*Gateway, error) {
	g := &Gateway{opts: o, byHost: map[string]*upstream{}, certs: newCertEncodings(), writeStall: o.WriteStall}
	if g.writeStall <= 0 {
		g.writeStall = DefaultWriteStall
	}
	buffers := newBufferPool()
	var errs []error
	for _, uc := range o.Upstreams {
		target, err := url.Parse(uc.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", uc.Name, err))
			continue
		}
		if uc.Upgrades == nil {
			uc.Upgrades = config.DefaultUpgrades() // for Options not made by config.Parse
		}
		u := &upstream{cfg: uc, target: target, basePath: strings.TrimSuffix(target.EscapedPath(), "/")}
		if uc.Binding.Mode == "header" {
			if u.hmacKey, err = secrets.LoadKey(uc.Binding.HMACKeyFile); err != nil {
				errs = append(errs, fmt.Errorf("upstream %s: header binding key: %w", uc.Name, err))
			}
			u.signer = newIdentitySigner(u.hmacKey, g.certs)
		}
		for _, pp := range uc.Permissions {
			if _, ok := o.Catalog.Point(pp.Point); !ok {
				errs = append(errs, fmt.Errorf("upstream %s: unknown permission point %q", uc.Name, pp.Point))
			}
			path := pp.Path
			if uc.CaseInsensitive {
				path = strings.ToLower(path)
			}
			u.perms = append(u.perms, config.PathPermission{Path: strings.TrimSuffix(path, "/"), Point: pp.Point})
		}
		sort.SliceStable(u.perms, func(i, j int) bool { return len(u.perms[i].Path) > len(u.perms[j].Path) })
		timeout := uc.Timeout.Duration()
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		transport := o.Transport
		if transport == nil {
			transport = newUpstreamTransport(timeout)
		}
		if target.Scheme == "http" && o.Transport == nil {
			u.direct = newDirectForwarder(hostPort(target), target.Host, timeout, buffers)
		}
		client := &http.Client{Transport: transport, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		switch uc.Binding.Mode {
		case "jwt":
			var keys keySource
			if uc.Binding.JWKSURL != "" {
				keys, err = newJWKS(uc.Binding.JWKSURL, o.JWKSClient)
			} else {
				keys, err = newFileKey(uc.Binding.JWTKeyFile)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("upstream %s: jwt binding: %w", uc.Name, err))
			}
			u.binder = newJWTBinder(keys, uc.Binding.JWTCookie, uc.Binding.JWTClaim, uc.Binding.JWTIssuer, uc.Binding.JWTAudience)
		case "whoami":
			u.binder = newWhoamiBinder(uc.Binding.WhoamiURL, uc.Binding.SessionCookie, uc.Binding.UserField, client)
		}
		u.proxy = &httputil.ReverseProxy{
			Rewrite:    u.rewrite,
			Transport:  transport,
			BufferPool: buffers,
			// 0: buffered writes, except that responses of unknown length
			// or text/event-stream are flushed at once (streaming is never
			// held back); flushing every write cost 15 % of the CPU.
			FlushInterval: 0,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				g.forwardFailed(w, r, uc.Name, err)
			},
		}
		for _, h := range uc.Hosts {
			g.byHost[strings.ToLower(h)] = u
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

// bufferPool recycles response copy buffers (ReverseProxy would allocate
// 32 KiB per request without one).
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (p *bufferPool) Get() []byte  { return *(p.pool.Get().(*[]byte)) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// newUpstreamTransport keeps enough idle connections for a busy gateway and
// gives the upstream timeout to answer.
func newUpstreamTransport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       50 * time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     false,
	}
}

// hostPort is the dial address of an upstream URL.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// upstreamFailed answers a request the upstream did not: 504 when it timed
// out, 502 otherwise. The error is logged, never shown.
func (g *Gateway) upstreamFailed(w http.ResponseWriter, name string, err error) {
	g.opts.Log.Warn("upstream error", "upstream", name, "err", err)
	http.Error(w, "upstream unavailable", upstreamStatus(err))
}

// forwardFailed answers a request that could not be forwarded: 400 when
// the client's own body was broken (a malformed chunked encoding, a body
// cut short), else as upstreamFailed.
func (g *Gateway) forwardFailed(w http.ResponseWriter, r *http.Request, name string, err error) {
	if clientBodyFailed(r) {
		g.opts.Log.Debug("bad request body", "upstream", name, "err", err)
		writePage(w, r, http.StatusBadRequest, badRequest, "bad_body", "")
		return
	}
	g.upstreamFailed(w, name, err)
}

// upstreamStatus: 504 when the upstream timed out, 502 otherwise.
func upstreamStatus(err error) int {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// Close drops idle upstream connections.
func (g *Gateway) Close() {
	for _, u := range g.byHost {
		if u.direct != nil {
			u.direct.Close()
		}
	}
}

// permission maps a canonical path to its permission point: the longest
// configured prefix that matches whole segments.
func (u *upstream) permission(path string) string {
	for _, pp := range u.perms {
		if path == pp.Path || strings.HasPrefix(path, pp.Path+"/") || pp.Path == "" {
			return pp.Point
		}
	}
	return ""
}

// canonicalKey is the request context key of the canonical path.
type canonicalKey struct{}

// forwardedPath is the escaped path the upstream receives.
func (u *upstream) forwardedPath(path string) string {
	return u.basePath + path
}

func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	path := pr.In.Context().Value(canonicalKey{}).(string)
	pr.SetURL(u.target)
	pr.Out.URL.RawPath = u.forwardedPath(path)
	pr.Out.URL.Path, _ = url.PathUnescape(pr.Out.URL.RawPath)
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.SetXForwarded()
}

// clientIP is the address part of a connection's remote address.
func clientIP(remoteAddr string) string {
	ip, _, _ := net.SplitHostPort(remoteAddr)
	return ip
}

// ServeHTTP routes, canonicalizes, decides and forwards one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := newStallWriter(w, g.writeStall)
	defer sw.release()
	g.serveHTTP(sw, r)
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		// A connection the fast path handed to net/http (Server).
		r.TLS, _ = r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
	}
	name, canonical, ok := canonicalHost(r.Host)
	if !ok {
		writePage(w, r, http.StatusBadRequest, badRequest, "bad_host", "")
		return
	}
	u := g.byHost[name]
	if u == nil {
		writePage(w, r, http.StatusMisdirectedRequest, badRequest, "unknown_host", "")
		return
	}
	r.Host = canonical // what the app sees as X-Forwarded-Host
	if reason := upgradeRefused(r, u); reason != "" {
		writePage(w, r, http.StatusBadRequest, badRequest, reason, "")
		return
	}
	raw := r.RequestURI
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	path, err := NormalizePath(raw, u.cfg.CaseInsensitive)
	if err != nil {
		writePage(w, r, http.StatusBadRequest, badRequest, "bad_path", "")
		return
	}
	if path == WhoamiPath {
		g.serveWhoami(w, r)
		return
	}
	for k := range r.Header {
		if strippedFromClient(k) {
			delete(r.Header, k)
		}
	}
	if u.cfg.RequireCertForLogin && samePath(path, u.cfg.LoginPath, u.cfg.CaseInsensitive) {
		if reason := g.loginAllowed(r); reason != ReasonCertificateValid {
			g.opts.Metrics.request(u.cfg.Name, "login", "deny", reason)
			writePage(w, r, http.StatusForbidden, refusal, reason, g.opts.EnrollURL)
			return
		}
	}
	point := u.permission(path)
	if point != "" && g.opts.Catalog.IsHighRisk(point) {
		grant, reason := g.decide(r, u, point)
		g.opts.Audit.Record(clientIP(r.RemoteAddr), grant, point, path, reason)
		decision := "allow"
		if reason != ReasonCertificateValid {
			decision = "deny"
		}
		g.opts.Metrics.request(u.cfg.Name, point, decision, reason)
		if reason != ReasonCertificateValid {
			status, texts := http.StatusForbidden, refusal
			if reason == ReasonPolicyStale {
				status, texts = http.StatusServiceUnavailable, unavailable
			}
			writePage(w, r, status, texts, reason, g.opts.EnrollURL)
			return
		}
		if u.hmacKey != nil {
			u.signer.sign(r.Header, grant, point, r.Method, u.forwardedPath(path), r.TLS.PeerCertificates, time.Now())
		} else {
			r.Header.Set(HeaderSubaccount, grant.SubName)
			r.Header.Set(HeaderDeviceID, grant.Principal.DeviceID)
			r.Header.Set(HeaderPermission, point)
		}
	} else {
		g.opts.Metrics.request(u.cfg.Name, "", "pass", "")
	}
	start := time.Now()
	r = wrapClientBody(r)
	if u.direct != nil && canForwardDirect(r) {
		if err := u.direct.forward(w, r, u.forwardedPath(path)); err != nil {
			g.forwardFailed(w, r, u.cfg.Name, err)
		}
	} else {
		u.proxy.ServeHTTP(w, r.WithContext(contextWithPath(r, path)))
	}
	g.opts.Metrics.upstreamTime(u.cfg.Name, time.Since(start))
}

// decidePeer is the certificate part of the rule (everything but the app
// session): fresh policy, and p's device and sub-account eligible for point.
func (g *Gateway) decidePeer(ctx context.Context, p *peer, point string) (Grant, string) {
	now := time.Now()
	if g.opts.Policy.Staleness(now) > g.opts.MaxStaleness {
		return Grant{}, ReasonPolicyStale
	}
	grant, reason := g.opts.Policy.Snapshot().checkPeer(p, point, now)
	if reason == ReasonUnknownDevice {
		// Maybe enrolled a moment ago: look again after a fresh sync.
		g.opts.Policy.SyncIfOlder(ctx)
		grant, reason = g.opts.Policy.Snapshot().checkPeer(p, point, now)
	}
	return grant, reason
}

// samePath compares a canonical path with a configured one.
func samePath(path, configured string, foldCase bool) bool {
	if foldCase {
		return strings.EqualFold(path, configured)
	}
	return path == configured
}

// loginAllowed: the login page needs a valid certificate of an active,
// protected sub-account (no permission point, no session yet).
func (g *Gateway) loginAllowed(r *http.Request) string {
	now := time.Now()
	if g.opts.Policy.Staleness(now) > g.opts.MaxStaleness {
		return ReasonPolicyStale
	}
	var leaf *x509.Certificate
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf = r.TLS.PeerCertificates[0]
	}
	_, reason := g.opts.Policy.Snapshot().identify(leaf, g.opts.TrustDomain, now)
	return reason
}

// decide applies the high-risk rule: fresh policy, valid device
// certificate of an eligible sub-account with the permission, and an app
// session of the same sub-account.
func (g *Gateway) decide(r *http.Request, u *upstream, point string) (Grant, string) {
	var leaf *x509.Certificate
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf = r.TLS.PeerCertificates[0]
	}
	grant, reason := g.decidePeer(r.Context(), newPeer(leaf, g.opts.TrustDomain), point)
	if reason != ReasonCertificateValid || u.hmacKey != nil {
		// Header binding: the app checks the signed identity against its
		// own session.
		return grant, reason
	}
	user, err := u.binder.User(r.Context(), r)
	switch {
	case errors.Is(err, errAmbiguousSession):
		return grant, ReasonAmbiguousSession
	case errors.Is(err, errNotLoggedIn):
		return grant, ReasonNotLoggedIn
	case err != nil:
		g.opts.Log.Warn("session check failed", "upstream", u.cfg.Name, "err", err)
		return grant, ReasonBindingFailed
	case user != grant.SubName:
		return grant, ReasonSessionMismatch
	}
	return grant, ReasonCertificateValid
}
