package proxy

import (
	"crypto/x509"
	"errors"
	"slices"
	"testing"
)

// Every reason handshakeReason gives is one of handshakeReasons, which
// the metrics export at 0 from the start (dashboards and alerts query them).
func TestHandshakeReasonsAreExported(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{x509.CertificateInvalidError{Reason: x509.Expired}, "expired_or_not_yet_valid"},
		{x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}, "wrong_key_usage"},
		{x509.UnknownAuthorityError{}, "unknown_authority"},
		{x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, "invalid"},
		{errors.New("other"), "invalid"},
	} {
		got := handshakeReason(tc.err)
		if got != tc.want || !slices.Contains(handshakeReasons, got) {
			t.Errorf("%v: %q, want %q (exported: %v)", tc.err, got, tc.want, handshakeReasons)
		}
	}
}
