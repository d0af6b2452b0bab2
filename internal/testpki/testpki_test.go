package testpki

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestLeavesVerifyOnlyWhenValid(t *testing.T) {
	p := New(t)
	other := New(t)
	inter := x509.NewCertPool()
	inter.AddCert(p.Intermediate)
	verify := func(c *x509.Certificate) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err
	}
	good, _ := p.Leaf(t, LeafOptions{CommonName: "ok"})
	if err := verify(good); err != nil {
		t.Fatal(err)
	}
	expired, _ := p.Leaf(t, LeafOptions{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	future, _ := p.Leaf(t, LeafOptions{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)})
	server, _ := p.Leaf(t, LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	foreign, _ := other.Leaf(t, LeafOptions{})
	for name, c := range map[string]*x509.Certificate{"expired": expired, "not yet valid": future, "server EKU": server, "other CA": foreign} {
		if err := verify(c); err == nil {
			t.Errorf("%s leaf verifies", name)
		}
	}
	if _, err := x509.ParseCertificateRequest(CSR(t, NewKey(t, RSA2048), nil)); err != nil {
		t.Fatal(err)
	}
	if sc := p.ServerCert(t, "localhost", "127.0.0.1"); len(sc.Leaf.IPAddresses) != 1 || sc.Leaf.DNSNames[0] != "localhost" {
		t.Fatalf("server cert %v %v", sc.Leaf.DNSNames, sc.Leaf.IPAddresses)
	}
}
