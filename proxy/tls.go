package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ConfigureTLS asks every client for a certificate without requiring one
// (normal paths work without, and a refused user gets a page, not an
// alert). A certificate that is presented must chain to the device CA with
// clientAuth: that is checked in VerifyConnection, which also runs on
// resumed sessions. Revocation and status are checked per request.
func ConfigureTLS(c *tls.Config, deviceCA *x509.CertPool, m *Metrics) {
	c.MinVersion = tls.VersionTLS12
	c.ClientAuth = tls.RequestClientCert
	c.ClientCAs = deviceCA
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         deviceCA,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			m.handshakeFailure(handshakeReason(err))
			return fmt.Errorf("client certificate: %w", err)
		}
		return nil
	}
}

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
