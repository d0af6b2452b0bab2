package proxy

import "github.com/devicegate/devicegate/proxy/internal/h1"

// The one rule for which client-sent headers reach an upstream, used by
// every way a request takes through the gateway (the fast path's head
// parser, the direct forwarder and httputil.ReverseProxy all see a request
// this rule has already cleaned).

// strippedClientHeaders (lower case) are never accepted from a client: the
// gateway's own identity headers and those of other TLS terminators, the
// client-address headers apps trust (the gateway writes its own
// X-Forwarded-For), and the headers apps route or pick a method by
// (IIS/ASP.NET, Symfony and Zend honour X-Original-URL and X-Rewrite-URL;
// many frameworks X-HTTP-Method-Override): a request for /products must
// not be served as /orders/sold behind the decision's back.
var strippedClientHeaders = []string{
	// certificate and identity headers
	"client-cert", "client-cert-chain", "x-forwarded-client-cert", "x-client-cert", "x-client-verify",
	"x-ssl-client-cert", "x-ssl-client-verify", "x-ssl-client-s-dn", "ssl-client-cert",
	"x-remote-user", "remote-user", "x-authenticated-user",
	// client address
	"forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "x-original-forwarded-for", "x-cluster-client-ip",
	// routing and method overrides
	"x-original-url", "x-rewrite-url", "x-original-uri", "x-original-host", "x-original-method", "x-host",
	"x-http-method-override", "x-http-method", "x-method-override", "x-envoy-original-path",
	// h2c upgrade settings: the gateway never lets a client switch to h2c
	"http2-settings",
}

// strippedClientPrefixes (lower case): every header of the gateway's own
// family and every X-Forwarded-* (X-Forwarded-Prefix, -Port, -Server, ...
// steer URL generation in apps; the gateway sets For, Host and Proto).
var strippedClientPrefixes = []string{"x-devicegate-", "x-forwarded-"}

// strippedFromClient reports whether a client-sent header named name is
// dropped before the request goes upstream. A name with an underscore is
// always dropped: CGI, WSGI and PHP fold '_' and '-' to the same variable
// (X_Forwarded_For reads as X-Forwarded-For), so such a name could stand
// in for any header on this list; nginx and Apache httpd drop them too.
func strippedFromClient[T string | []byte](name T) bool {
	for i := 0; i < len(name); i++ {
		if name[i] == '_' {
			return true
		}
	}
	for _, p := range strippedClientPrefixes {
		if len(name) >= len(p) && h1.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	for _, h := range strippedClientHeaders {
		if h1.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// stripClientHeaders applies strippedFromClient to a request net/http
// parsed (the fast path's parser applies it to each line it reads).
func stripClientHeaders(h map[string][]string) {
	for k := range h {
		if strippedFromClient(k) {
			delete(h, k)
		}
	}
}
