package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/devicegate/devicegate/internal/config"
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
	Now          func() time.Time  // the clock of every decision (nil: time.Now)
	DeviceCAs    *DeviceCAs        // the device intermediates, when they may change (nil: fixed)
}

// Gateway is the proxy's HTTP handler.
type Gateway struct {
	opts       Options
	writeStall time.Duration
	byHost     map[string]*upstream
	certs      *certEncodings // RFC 9440 header values, for header binding
}

// identityPrefix names the gateway's own identity headers (the client's
// are stripped: see strippedFromClient).
const identityPrefix = "X-Devicegate-"

// NewGateway checks the upstreams against the catalog and builds the
// handler. Unknown permission points are a start-up error (fail closed).
func NewGateway(o Options) (*Gateway, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Gateway{opts: o, byHost: map[string]*upstream{}, certs: newCertEncodings(), writeStall: o.WriteStall}
	if g.writeStall <= 0 {
		g.writeStall = DefaultWriteStall
	}
	buffers := newBufferPool()
	var errs []error
	for _, uc := range o.Upstreams {
		u, err := g.newUpstream(uc, buffers)
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", uc.Name, err))
			continue
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
// 32 KiB per request without one). It keeps array pointers: a Put turns
// the slice back into one without allocating (a *[]byte made per Put was
// the fast path's one allocation per request).
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (p *bufferPool) Get() []byte { return p.pool.Get().(*[copyBufferSize]byte)[:] }

func (p *bufferPool) Put(b []byte) {
	if cap(b) >= copyBufferSize {
		p.pool.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}

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
		writeBadRequest(w, r, http.StatusBadRequest, "bad_body")
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
		writeBadRequest(w, r, http.StatusBadRequest, "bad_host")
		return
	}
	u := g.byHost[name]
	if u == nil {
		writeBadRequest(w, r, http.StatusMisdirectedRequest, "unknown_host")
		return
	}
	r.Host = canonical // what the app sees as X-Forwarded-Host
	if reason := upgradeRefused(r, u); reason != "" {
		writeBadRequest(w, r, http.StatusBadRequest, reason)
		return
	}
	raw := r.RequestURI
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	path, err := NormalizePath(raw, u.cfg.CaseInsensitive)
	if err != nil {
		writeBadRequest(w, r, http.StatusBadRequest, "bad_path")
		return
	}
	if path == WhoamiPath {
		g.serveWhoami(w, r)
		return
	}
	stripClientHeaders(r.Header)
	p := newPeer(peerLeaf(r), g.opts.TrustDomain)
	if u.cfg.RequireCertForLogin && samePath(path, u.cfg.LoginPath, u.cfg.CaseInsensitive) {
		if _, reason, _ := g.identifyFresh(r.Context(), p); !reason.Allowed() {
			g.opts.Metrics.request(u.cfg.Name, "login", "deny", reason.String())
			writeRefusal(w, r, http.StatusForbidden, reason, g.opts.EnrollURL)
			return
		}
	}
	out := &outbound{path: u.forwardedPath(path)}
	var identity []byte
	point := u.permission(path)
	if point != "" && g.opts.Catalog.IsHighRisk(point) {
		grant, reason := g.decide(r.Context(), u, p, point, sessionOf(r.Header))
		g.opts.Audit.Record(clientIP(r.RemoteAddr), grant, point, path, reason)
		g.opts.Metrics.request(u.cfg.Name, point, decisionLabel(reason), reason.String())
		if !reason.Allowed() {
			status := http.StatusForbidden
			if reason == ReasonPolicyStale {
				status = http.StatusServiceUnavailable
			}
			writeRefusal(w, r, status, reason, g.opts.EnrollURL)
			return
		}
		var ok bool
		if identity, ok = u.identityLines(nil, grant, point, r.Method, out.path, r.TLS.PeerCertificates, g.opts.Now()); !ok {
			g.upstreamFailed(w, u.cfg.Name, errUnsendableIdentity)
			return
		}
	} else {
		g.opts.Metrics.request(u.cfg.Name, "", "pass", "")
	}
	var added bytes.Buffer
	writeGatewayHeaders(&added, clientIP(r.RemoteAddr), r.Host, r.TLS != nil, identity)
	out.added = added.Bytes()
	start := time.Now()
	r = wrapClientBody(r)
	if err := u.forwarderFor(r).forward(w, r, out); err != nil {
		g.forwardFailed(w, r, u.cfg.Name, err)
	}
	g.opts.Metrics.upstreamTime(u.cfg.Name, time.Since(start))
}

// errUnsendableIdentity: an identity value with bytes a header line cannot
// carry; the request is not forwarded (fail closed).
var errUnsendableIdentity = errors.New("identity headers cannot be sent")

// decisionLabel is the metrics label of a decision.
func decisionLabel(r Reason) string {
	if r.Allowed() {
		return "allow"
	}
	return "deny"
}

// peerLeaf is the client certificate of a request, or nil.
func peerLeaf(r *http.Request) *x509.Certificate {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0]
	}
	return nil
}

// samePath compares a canonical path with a configured one.
func samePath(path, configured string, foldCase bool) bool {
	if foldCase {
		return strings.EqualFold(path, configured)
	}
	return path == configured
}
