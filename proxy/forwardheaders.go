package proxy

import (
	"bytes"
	"crypto/x509"
	"net/http"
	"net/textproto"
	"time"
)

// The one rule for what the gateway adds to a request it forwards, used by
// every way out (the fast path, the direct forwarder and ReverseProxy):
// X-Forwarded-For/-Host/-Proto of its own (the client's are stripped, see
// headerpolicy.go), and on a high-risk path the identity the decision
// vouched for. Each way out writes the same lines: the fast path and the
// direct forwarder as bytes, ReverseProxy into its header map through
// setHeaderLines.

// lineWriter is where header lines go: a request head being written
// (*bufio.Writer) or a buffer (*bytes.Buffer).
type lineWriter interface {
	Write([]byte) (int, error)
	WriteString(string) (int, error)
}

// writeGatewayHeaders writes the gateway's own header lines: the client's
// address, the canonical Host it asked for, the scheme, then identity
// (lines from identityLines, or nil).
func writeGatewayHeaders[T string | []byte](w lineWriter, clientIP string, host T, tls bool, identity []byte) {
	if clientIP != "" {
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(clientIP)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-Host: ")
	w.Write([]byte(host)) // no copy: the compiler passes a string's bytes as they are
	if tls {
		w.WriteString("\r\nX-Forwarded-Proto: https\r\n")
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	}
	w.Write(identity)
}

// identityLines are the header lines of an allowed high-risk request: for
// header binding the signed identity and the RFC 9440 certificate headers
// the app verifies, for the other bindings the identity the gateway
// checked against the app's own session. False: a value that cannot be
// sent in a header line (fail closed).
func (u *upstream) identityLines(dst []byte, g Grant, point, method, path string, peer []*x509.Certificate, now time.Time) ([]byte, bool) {
	if u.mode == bindingHeader {
		dst, ok := u.signer.appendSigned(dst, g, point, method, path, now)
		return append(dst, u.signer.certLines(peer)...), ok
	}
	return appendIdentity(dst, g, point)
}

// appendIdentity appends the unsigned identity lines (whoami and jwt
// bindings: the app's session was checked by the gateway).
func appendIdentity(dst []byte, g Grant, point string) ([]byte, bool) {
	for _, v := range [...]string{g.SubName, g.Principal.DeviceID, point} {
		if !headerValueSafe(v) {
			return dst, false
		}
	}
	dst = appendHeaderLine(dst, HeaderSubaccount, g.SubName)
	dst = appendHeaderLine(dst, HeaderDeviceID, g.Principal.DeviceID)
	return appendHeaderLine(dst, HeaderPermission, point), true
}

// setHeaderLines sets the headers of lines ("Name: value\r\n"..., as
// written by writeGatewayHeaders) in h, replacing what h had under those
// names.
func setHeaderLines(h http.Header, lines []byte) {
	for len(lines) > 0 {
		line, rest, _ := bytes.Cut(lines, []byte("\r\n"))
		lines = rest
		name, value, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		h[textproto.CanonicalMIMEHeaderKey(string(name))] = []string{string(value)}
	}
}

// outbound is what the general path forwards besides the client's own
// end-to-end headers: the path and the gateway's header lines.
type outbound struct {
	path  string // canonical, escaped, with the upstream's base path
	added []byte // from writeGatewayHeaders
}
