package proxy

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/devicegate/devicegate/internal/testpki"
)

// A renewal interrupted between its writes (new cert.pem, old key.pem,
// new key.pem.next) is finished at load; a pair that does not match and
// has no matching next key is refused.
func TestLoadFeedCertificateAfterInterruptedRenewal(t *testing.T) {
	pki := testpki.New(t)
	oldCert, newCert := pki.ServerCert(t, "a"), pki.ServerCert(t, "b")
	keyPEM := func(c any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(c.(crypto.Signer))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	tests := []struct {
		name       string
		cert, key  []byte
		next       []byte // nil: no key.pem.next
		wantLeaf   []byte // nil: refused
		wantKeyPEM []byte
	}{
		{"matching pair", certPEM(oldCert.Certificate[0]), keyPEM(oldCert.PrivateKey), nil, oldCert.Certificate[0], keyPEM(oldCert.PrivateKey)},
		{"stale next key ignored", certPEM(oldCert.Certificate[0]), keyPEM(oldCert.PrivateKey), keyPEM(newCert.PrivateKey), oldCert.Certificate[0], keyPEM(oldCert.PrivateKey)},
		{"interrupted renewal", certPEM(newCert.Certificate[0]), keyPEM(oldCert.PrivateKey), keyPEM(newCert.PrivateKey), newCert.Certificate[0], keyPEM(newCert.PrivateKey)},
		{"mismatch without next", certPEM(newCert.Certificate[0]), keyPEM(oldCert.PrivateKey), nil, nil, keyPEM(oldCert.PrivateKey)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, feedCertFile), tc.cert, 0o644)
			os.WriteFile(filepath.Join(dir, feedKeyFile), tc.key, 0o600)
			if tc.next != nil {
				os.WriteFile(filepath.Join(dir, feedNextKey), tc.next, 0o600)
			}
			cert, err := LoadFeedCertificate(dir)
			if tc.wantLeaf == nil {
				if err == nil {
					t.Fatal("a certificate whose key is missing was loaded")
				}
			} else if err != nil || !bytes.Equal(cert.Certificate[0], tc.wantLeaf) {
				t.Fatalf("loaded %v", err)
			}
			if key, _ := os.ReadFile(filepath.Join(dir, feedKeyFile)); !bytes.Equal(key, tc.wantKeyPEM) {
				t.Fatal("key.pem is not the key of cert.pem")
			}
		})
	}
}
