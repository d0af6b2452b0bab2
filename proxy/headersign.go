package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Header binding: the gateway vouches for the identity with headers the app
// can verify with a shared key; the app binds them to its own session.
const (
	HeaderSubaccount = identityPrefix + "Subaccount"
	HeaderDeviceID   = identityPrefix + "Device-Id"
	HeaderPermission = identityPrefix + "Permission"
	HeaderTimestamp  = identityPrefix + "Timestamp"
	HeaderSignature  = identityPrefix + "Signature"
)

// signature is base64 HMAC-SHA256 over a versioned, newline-separated
// string of everything the headers claim plus the request it belongs to.
func signature(key []byte, sub, device, permission, method, path, ts string) string {
	return signatureWith(hmac.New(sha256.New, key), sub, device, permission, method, path, ts)
}

func signatureWith(m hash.Hash, sub, device, permission, method, path, ts string) string {
	var sum [sha256.Size]byte
	writeSignedFields(m, sub, device, permission, method, path)
	io.WriteString(m, ts)
	m.Write([]byte{'\n'})
	return base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
}

// writeSignedFields writes the signed string up to the timestamp, which
// the caller writes last, followed by a newline (as a string or, on the
// fast path, as bytes that need no allocation).
func writeSignedFields(m hash.Hash, sub, device, permission, method, path string) {
	for _, f := range [...]string{"devicegate-v1", sub, device, permission, method, path} {
		io.WriteString(m, f)
		m.Write([]byte{'\n'})
	}
}

// identitySigner signs identity headers with one upstream's key, reusing
// HMAC states (a new one per request was a tenth of the gateway's
// allocations).
type identitySigner struct {
	macs  sync.Pool
	certs *certEncodings
}

func newIdentitySigner(key []byte, certs *certEncodings) *identitySigner {
	return &identitySigner{certs: certs, macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sign sets the identity headers, their signature and the RFC 9440
// Client-Cert / Client-Cert-Chain headers on an allowed request. The
// values share one backing array: one allocation for all of them.
func (s *identitySigner) sign(h http.Header, g Grant, permission, method, path string, peer []*x509.Certificate, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	sig := signatureWith(m, g.SubName, g.Principal.DeviceID, permission, method, path, ts)
	s.macs.Put(m)
	vals := make([]string, 7)
	vals[0], vals[1], vals[2], vals[3], vals[4] = g.SubName, g.Principal.DeviceID, permission, ts, sig
	h[HeaderSubaccount], h[HeaderDeviceID], h[HeaderPermission] = vals[0:1:1], vals[1:2:2], vals[2:3:3]
	h[HeaderTimestamp], h[HeaderSignature] = vals[3:4:4], vals[4:5:5]
	if len(peer) > 0 {
		vals[5] = s.certs.get(peer[0].Raw)
		h["Client-Cert"] = vals[5:6:6]
		if len(peer) > 1 {
			vals[6] = string(s.appendChain(nil, peer[1:]))
			h["Client-Cert-Chain"] = vals[6:7:7]
		}
	}
}

// appendSigned is sign for the fast path: the same identity headers,
// appended as "Name: value" lines to an upstream request head, without a
// header map (the Client-Cert lines come from certLines, made once per
// connection). It refuses (false) values that could not be sent in a
// header line.
func (s *identitySigner) appendSigned(dst []byte, g Grant, permission, method, path string, now time.Time) ([]byte, bool) {
	for _, v := range [...]string{g.SubName, g.Principal.DeviceID, permission} {
		if !headerValueSafe(v) {
			return dst, false
		}
	}
	var tsBuf [20]byte
	ts := strconv.AppendInt(tsBuf[:0], now.Unix(), 10)
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	writeSignedFields(m, g.SubName, g.Principal.DeviceID, permission, method, path)
	m.Write(ts)
	m.Write([]byte{'\n'})
	var sum [sha256.Size]byte
	var sig [44]byte // base64 of 32 bytes
	base64.StdEncoding.Encode(sig[:], m.Sum(sum[:0]))
	s.macs.Put(m)
	dst = appendHeaderLine(dst, HeaderSubaccount, g.SubName)
	dst = appendHeaderLine(dst, HeaderDeviceID, g.Principal.DeviceID)
	dst = appendHeaderLine(dst, HeaderPermission, permission)
	dst = append(append(append(dst, HeaderTimestamp+": "...), ts...), "\r\n"...)
	dst = append(append(append(dst, HeaderSignature+": "...), sig[:]...), "\r\n"...)
	return dst, true
}

// certLines are the RFC 9440 Client-Cert and Client-Cert-Chain header
// lines of a connection's certificates (none without a certificate).
func (s *identitySigner) certLines(peer []*x509.Certificate) []byte {
	var dst []byte
	if len(peer) == 0 {
		return dst
	}
	dst = appendHeaderLine(dst, "Client-Cert", s.certs.get(peer[0].Raw))
	if len(peer) > 1 {
		dst = append(s.appendChain(append(dst, "Client-Cert-Chain: "...), peer[1:]), "\r\n"...)
	}
	return dst
}

// appendChain appends the Client-Cert-Chain value: the certificates'
// encodings, comma-separated (RFC 9440).
func (s *identitySigner) appendChain(dst []byte, chain []*x509.Certificate) []byte {
	for i, c := range chain {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, s.certs.get(c.Raw)...)
	}
	return dst
}

func appendHeaderLine(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// headerValueSafe: no control bytes (CR and LF above all) in a value the
// gateway writes itself.
func headerValueSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// VerifyIdentity is for Go apps behind the gateway: it checks the signed
// identity headers of r (path = the request's escaped path) and returns the
// sub-account and device. Headers older than maxAge are refused.
func VerifyIdentity(key []byte, r *http.Request, maxAge time.Duration) (sub, device string, err error) {
	h := r.Header
	sub, device = h.Get(HeaderSubaccount), h.Get(HeaderDeviceID)
	ts := h.Get(HeaderTimestamp)
	sec, perr := strconv.ParseInt(ts, 10, 64)
	if sub == "" || device == "" || perr != nil {
		return "", "", errors.New("devicegate identity headers missing")
	}
	if age := time.Since(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return "", "", errors.New("devicegate identity headers expired")
	}
	want := signature(key, sub, device, h.Get(HeaderPermission), r.Method, r.URL.EscapedPath(), ts)
	if !hmac.Equal([]byte(want), []byte(h.Get(HeaderSignature))) {
		return "", "", errors.New("devicegate identity headers: bad signature")
	}
	return sub, device, nil
}
