package ca

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"text/template"
	"time"

	"go.step.sm/crypto/x509util"
)

// testSigner is the device signer of a fresh CA.
func testSigner(t testing.TB) *signer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(dir, InitOptions{Name: "signer test"}); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newDeviceSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testLeafSpec() leafSpec {
	now := time.Now().Truncate(time.Second)
	return leafSpec{CommonName: "store/staff", URI: "spiffe://test.local/store/a/sub/b/device/c",
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		CRLURL: "https://ca.example/crl", OCSPURL: "https://ca.example/ocsp"}
}

// The signer checks the CSR's signature (proof of possession) itself, once:
// a tampered CSR or one whose key is not the signing key gets nothing.
func TestSignerChecksProofOfPossession(t *testing.T) {
	s, spec := testSigner(t), testLeafSpec()
	good := newCSR(t, newKey(t), nil)
	tests := []struct {
		name string
		csr  []byte
		want error
	}{
		{"good CSR", good, nil},
		{"bad signature", tamperCSR(t, good), ErrCSRSignature},
		{"CSR for another key", swappedKeyCSR(t), ErrCSRSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := parseCSRUnverified(tt.csr, false)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := s.sign(context.Background(), csr, spec)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if chain != nil {
					t.Fatal("a refused CSR got a certificate")
				}
				return
			}
			leaf := chain[0]
			if err := leaf.CheckSignatureFrom(s.issuer); err != nil || !chain[1].Equal(s.issuer) {
				t.Fatalf("not signed by the device intermediate: %v", err)
			}
			if leaf.Subject.CommonName != spec.CommonName || len(leaf.URIs) != 1 || leaf.URIs[0].String() != spec.URI ||
				!leaf.NotBefore.Equal(spec.NotBefore) || !leaf.NotAfter.Equal(spec.NotAfter) ||
				!slices.Equal(leaf.CRLDistributionPoints, []string{spec.CRLURL}) || !slices.Equal(leaf.OCSPServer, []string{spec.OCSPURL}) {
				t.Fatalf("certificate does not say what the spec says: %+v", leaf)
			}
		})
	}
}

// A template mistake never produces a certificate with other powers: the
// rendered certificate is checked (clientLeafCheck) before it is signed.
func TestSignerRefusesTemplateMistakes(t *testing.T) {
	tests := []struct{ name, tmpl string }{
		{"CA", `{"subject": {{ toJson .Subject }}, "sans": {{ toJson .SANs }}, "crlDistributionPoints": {{ toJson .CRLDistributionPoints }}, "ocspServer": {{ toJson .OCSPServer }},
			"keyUsage": ["digitalSignature"], "extKeyUsage": ["clientAuth"], "basicConstraints": {"isCA": true}}`},
		{"serverAuth EKU", `{"subject": {{ toJson .Subject }}, "sans": {{ toJson .SANs }}, "crlDistributionPoints": {{ toJson .CRLDistributionPoints }}, "ocspServer": {{ toJson .OCSPServer }},
			"keyUsage": ["digitalSignature"], "extKeyUsage": ["clientAuth", "serverAuth"]}`},
		{"DNS SAN", `{"subject": {{ toJson .Subject }}, "sans": [{"type": "dns", "value": "evil.example"}, {"type": "uri", "value": "spiffe://test.local/store/a/sub/b/device/c"}],
			"crlDistributionPoints": {{ toJson .CRLDistributionPoints }}, "ocspServer": {{ toJson .OCSPServer }}, "keyUsage": ["digitalSignature"], "extKeyUsage": ["clientAuth"]}`},
		{"no CRL URL", `{"subject": {{ toJson .Subject }}, "sans": {{ toJson .SANs }}, "ocspServer": {{ toJson .OCSPServer }},
			"keyUsage": ["digitalSignature"], "extKeyUsage": ["clientAuth"]}`},
	}
	csr, err := parseCSRUnverified(newCSR(t, newKey(t), nil), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSigner(t)
			s.leafTmpl = template.Must(template.New(tt.name).Funcs(x509util.GetFuncMap()).Parse(tt.tmpl))
			if chain, err := s.sign(context.Background(), csr, testLeafSpec()); err == nil || chain != nil {
				t.Fatalf("signed a certificate from a bad template (err %v)", err)
			}
		})
	}
}

// BenchmarkSign is one device certificate signed (CSR signature check,
// template, signature with Go's self-check): the signing share of an
// issuance, without the store.
func BenchmarkSign(b *testing.B) {
	s, spec := testSigner(b), testLeafSpec()
	csr, err := parseCSRUnverified(newCSR(b, newKey(b), nil), false)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.sign(context.Background(), csr, spec); err != nil {
			b.Fatal(err)
		}
	}
}
