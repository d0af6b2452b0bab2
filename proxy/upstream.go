package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/secrets"
)

// upstream is one app behind the gateway, as configured.
type upstream struct {
	cfg      config.Upstream
	mode     bindingMode
	signer   *identitySigner // bindingHeader only
	binder   sessionBinder   // bindingWhoami and bindingJWT only
	target   *url.URL
	basePath string                  // the upstream URL's escaped path, without a final "/"
	general  reverseProxy            // every request net/http parsed...
	direct   *directForwarder        // ...but GET/HEAD without a body to a plain-HTTP upstream (nil for https)
	perms    []config.PathPermission // longest path first
}

// newUpstream checks one upstream's configuration and builds its way out:
// binding, permission table and forwarders.
func (g *Gateway) newUpstream(uc config.Upstream, buffers *bufferPool) (*upstream, error) {
	o := g.opts
	target, err := url.Parse(uc.URL)
	if err != nil {
		return nil, err
	}
	if uc.Upgrades == nil {
		uc.Upgrades = config.DefaultUpgrades() // for Options not made by config.Parse
	}
	u := &upstream{cfg: uc, target: target, basePath: strings.TrimSuffix(target.EscapedPath(), "/")}
	if u.mode, err = parseBindingMode(uc.Binding.Mode); err != nil {
		return nil, err
	}
	var errs []error
	for _, pp := range uc.Permissions {
		if _, ok := o.Catalog.Point(pp.Point); !ok {
			errs = append(errs, fmt.Errorf("unknown permission point %q", pp.Point))
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
	switch u.mode {
	case bindingHeader:
		key, err := secrets.LoadKey(uc.Binding.HMACKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("header binding key: %w", err))
		}
		u.signer = newIdentitySigner(key, g.certs)
	case bindingJWT:
		var keys keySource
		if uc.Binding.JWKSURL != "" {
			keys, err = newJWKS(uc.Binding.JWKSURL, o.JWKSClient)
		} else {
			keys, err = newFileKey(uc.Binding.JWTKeyFile)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("jwt binding: %w", err))
		}
		u.binder = newJWTBinder(keys, uc.Binding.JWTCookie, uc.Binding.JWTClaim, uc.Binding.JWTIssuer, uc.Binding.JWTAudience, o.Now)
	case bindingWhoami:
		client := &http.Client{Transport: transport, Timeout: whoamiTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		u.binder = newWhoamiBinder(uc.Binding.WhoamiURL, uc.Binding.SessionCookie, uc.Binding.UserField, client, o.Now)
	}
	u.general.rp = &httputil.ReverseProxy{
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return u, nil
}

// whoamiTimeout bounds one question to an app's whoami URL (it is asked on
// the request's way, so it must not hold the request longer).
const whoamiTimeout = 10 * time.Second

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

// forwardedPath is the escaped path the upstream receives.
func (u *upstream) forwardedPath(path string) string {
	return u.basePath + path
}

// The ways out of the gateway. The fast path (fastConn, fastforward.go)
// writes its upstream request straight from the client's parsed head; a
// request net/http parsed takes a forwarder: the direct forwarder for what
// it can send (a bodiless GET or HEAD to a plain-HTTP upstream, in the
// handler's goroutine), ReverseProxy for the rest (bodies, upgrades, https
// upstreams). All of them send the headers writeGatewayHeaders wrote.

// forwarder sends a request net/http parsed upstream as out says and
// relays the answer to w. An error means nothing was written to w yet.
type forwarder interface {
	forward(w http.ResponseWriter, r *http.Request, out *outbound) error
}

// forwarderFor picks the way out of a request net/http parsed.
func (u *upstream) forwarderFor(r *http.Request) forwarder {
	if u.direct != nil && canForwardDirect(r) {
		return u.direct
	}
	return u.general
}

// reverseProxy is the general way out: httputil.ReverseProxy, which
// answers its own errors (through Gateway.forwardFailed).
type reverseProxy struct{ rp *httputil.ReverseProxy }

func (p reverseProxy) forward(w http.ResponseWriter, r *http.Request, out *outbound) error {
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), outboundKey{}, out)))
	return nil
}

// outboundKey is the request context key of what the general path's
// ReverseProxy forwards: the canonical path and the gateway's own headers.
type outboundKey struct{}

func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	out := pr.In.Context().Value(outboundKey{}).(*outbound)
	pr.SetURL(u.target)
	pr.Out.URL.RawPath = out.path
	pr.Out.URL.Path, _ = url.PathUnescape(pr.Out.URL.RawPath)
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	setHeaderLines(pr.Out.Header, out.added)
}
