package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
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
	m := hmac.New(sha256.New, key)
	for _, f := range []string{"devicegate-v1", sub, device, permission, method, path, ts} {
		m.Write([]byte(f))
		m.Write([]byte{'\n'})
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// signIdentity sets the identity headers, their signature and the RFC 9440
// Client-Cert / Client-Cert-Chain headers on an allowed request.
func signIdentity(h http.Header, key []byte, g Grant, permission, method, path string, peer []*x509.Certificate, certs *certEncodings, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	h.Set(HeaderSubaccount, g.SubName)
	h.Set(HeaderDeviceID, g.Principal.DeviceID)
	h.Set(HeaderPermission, permission)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, signature(key, g.SubName, g.Principal.DeviceID, permission, method, path, ts))
	if len(peer) > 0 {
		h.Set("Client-Cert", certs.get(peer[0].Raw))
		if len(peer) > 1 {
			chain := make([]string, 0, len(peer)-1)
			for _, c := range peer[1:] {
				chain = append(chain, certs.get(c.Raw))
			}
			h.Set("Client-Cert-Chain", strings.Join(chain, ", "))
		}
	}
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
