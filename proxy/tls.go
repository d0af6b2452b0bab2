package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ConfigureTLS asks every client for a certificate without requiring one
// (normal paths work without, and a refused user gets a page, not an
// alert). A certificate that is presented must be signed by the device CA
// with clientAuth: that is checked in VerifyConnection, which also runs on
// resumed sessions. Revocation and status are checked per request.
func ConfigureTLS(c *tls.Config, deviceCA *x509.CertPool, m *Metrics) {
	ConfigureDeviceTLS(c, fixedDeviceCAs(deviceCA), m)
}

// ConfigureDeviceTLS is ConfigureTLS with device intermediates that may
// change while the listener runs (a rotation): each handshake verifies
// against the set of that moment and names the set's CAs to the client
// (browsers choose a certificate by them), and a certificate of a retired
// intermediate is refused as such.
func ConfigureDeviceTLS(c *tls.Config, cas *DeviceCAs, m *Metrics) {
	c.MinVersion = tls.VersionTLS12
	c.ClientAuth = tls.RequestClientCert
	first := cas.cur.Load()
	c.ClientCAs = first.pool
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		leaf := cs.PeerCertificates[0]
		now := time.Now()
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			m.handshakeFailure("expired_or_not_yet_valid")
			return errors.New("client certificate: expired or not yet valid")
		}
		trust := cas.cur.Load()
		key := sha256.Sum256(leaf.Raw)
		if trust.verified.has(key) {
			return nil
		}
		// Device certificates are signed by a device intermediate itself,
		// the only trust anchors: intermediates sent by the client are not
		// needed and not consulted.
		opts := x509.VerifyOptions{
			Roots:       trust.pool,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if _, err := leaf.Verify(opts); err != nil {
			if name := trust.retiredIssuer(leaf, opts); name != "" {
				m.handshakeFailure("retired_intermediate")
				return fmt.Errorf("client certificate: issued by the retired device intermediate %q: enroll this computer again", name)
			}
			m.handshakeFailure(handshakeReason(err))
			return fmt.Errorf("client certificate: %w", err)
		}
		trust.verified.add(key)
		return nil
	}
	// After a change of the set, handshakes use a copy of this config
	// naming the new set's CAs (made once per set); until then, c itself.
	base := c
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		trust := cas.cur.Load()
		if trust == first {
			return nil, nil
		}
		trust.once.Do(func() {
			cfg := base.Clone()
			cfg.GetConfigForClient = nil
			cfg.ClientCAs = trust.pool
			trust.cfg = cfg
		})
		return trust.cfg, nil
	}
}

// verifiedCache remembers certificates (by the SHA-256 of their DER) whose
// signature chain verified, so a returning device costs no signature check
// in the handshake. Validity times are checked on every handshake; status
// and revocation on every request.
type verifiedCache struct {
	mu sync.Mutex
	ok map[[32]byte]struct{}
}

const maxVerifiedCache = 100000

func newVerifiedCache() *verifiedCache { return &verifiedCache{ok: map[[32]byte]struct{}{}} }

func (v *verifiedCache) has(k [32]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.ok[k]
	return ok
}

func (v *verifiedCache) add(k [32]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.ok) >= maxVerifiedCache {
		clear(v.ok) // bounded; the next handshakes verify again
	}
	v.ok[k] = struct{}{}
}

// handshakeReasons are every reason of a handshake failure: the values
// handshakeReason returns, and a certificate of a retired intermediate.
var handshakeReasons = []string{"expired_or_not_yet_valid", "wrong_key_usage", "unknown_authority", "invalid", "retired_intermediate"}

// handshakeReason classifies a chain verification error for metrics.
func handshakeReason(err error) string {
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "expired_or_not_yet_valid"
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		return "wrong_key_usage"
	case errors.As(err, &unk):
		return "unknown_authority"
	}
	return "invalid"
}
