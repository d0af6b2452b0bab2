// Package testpki builds throwaway PKIs for tests: a root, an
// intermediate, and leaves with whatever flaw a test needs (expired, not yet
// valid, wrong EKU, another CA, unsupported key). Nothing is shared between
// calls; every key comes from crypto/rand.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// PKI is a root and an intermediate CA.
type PKI struct {
	Root            *x509.Certificate
	RootKey         crypto.Signer
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer
}

// KeyType selects a leaf key.
type KeyType int

const (
	P256 KeyType = iota
	P384
	RSA2048
	RSA1024
	Ed25519
)

// NewKey generates a key of the given type.
func NewKey(t testing.TB, kt KeyType) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kt {
	case P384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		k, err = rsa.GenerateKey(rand.Reader, 1024) // for "unsupported key" tests
	case Ed25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// New returns a fresh root and intermediate (path length 0).
func New(t testing.TB) *PKI {
	t.Helper()
	now := time.Now()
	p := &PKI{RootKey: NewKey(t, P256), IntermediateKey: NewKey(t, P256)}
	root := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: "testpki root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	p.Root = create(t, root, root, p.RootKey.Public(), p.RootKey)
	inter := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: "testpki intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	p.Intermediate = create(t, inter, p.Root, p.IntermediateKey.Public(), p.RootKey)
	return p
}

// LeafOptions describe a leaf; zero values give a valid P-256 clientAuth
// certificate for one hour.
type LeafOptions struct {
	CommonName string
	URIs       []string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
	EKU        []x509.ExtKeyUsage // default clientAuth
	Key        KeyType
}

// Leaf issues a leaf from the intermediate.
func (p *PKI) Leaf(t testing.TB, o LeafOptions) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := NewKey(t, o.Key)
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Minute)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(time.Hour)
	}
	if o.EKU == nil {
		o.EKU = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: o.CommonName},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter, ExtKeyUsage: o.EKU, KeyUsage: x509.KeyUsageDigitalSignature,
		DNSNames: o.DNSNames, IPAddresses: o.IPs}
	for _, u := range o.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	return create(t, tmpl, p.Intermediate, key.Public(), p.IntermediateKey), key
}

// ServerCert is a TLS server certificate for hosts (DNS names or IPs).
func (p *PKI) ServerCert(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	o := LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			o.IPs = append(o.IPs, ip)
		} else {
			o.DNSNames = append(o.DNSNames, h)
		}
	}
	leaf, key := p.Leaf(t, o)
	return p.TLSCertificate(leaf, key)
}

// TLSCertificate bundles a leaf with the intermediate.
func (p *PKI) TLSCertificate(leaf *x509.Certificate, key crypto.Signer) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, p.Intermediate.Raw}, PrivateKey: key, Leaf: leaf}
}

// RootPool trusts the root.
func (p *PKI) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root)
	return pool
}

// PEM encodes certificates.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// CSR returns a DER PKCS#10 request signed by key with the given template
// (nil: an empty subject).
func CSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
