package proxy

import (
	"crypto/x509"
	"slices"
	"testing"

	"github.com/devicegate/devicegate/internal/testpki"
)

// Trusted follows Set (the expiry metric reads it at every scrape), and an
// empty set, ignored by Set, leaves it as it was.
func TestDeviceCAsTrustedFollowsSet(t *testing.T) {
	a, b := testpki.New(t).Intermediate, testpki.New(t).Intermediate
	d := NewDeviceCAs([]*x509.Certificate{a}, nil)
	for _, step := range []struct {
		set  []*x509.Certificate
		want []*x509.Certificate
	}{
		{nil, []*x509.Certificate{a}},
		{[]*x509.Certificate{a, b}, []*x509.Certificate{a, b}},
		{[]*x509.Certificate{}, []*x509.Certificate{a, b}},
		{[]*x509.Certificate{b}, []*x509.Certificate{b}},
	} {
		if step.set != nil {
			d.Set(step.set, nil)
		}
		if got := d.Trusted(); !slices.Equal(got, step.want) {
			t.Errorf("after Set(%d certificates): Trusted has %d, want %d", len(step.set), len(got), len(step.want))
		}
	}
}
