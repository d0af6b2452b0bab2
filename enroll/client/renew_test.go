package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/testpki"
)

// TestRenewRefusesBadDirectories: renew reads only a directory enroll
// wrote, with the key that belongs to its certificate, and changes nothing
// when it refuses.
func TestRenewRefusesBadDirectories(t *testing.T) {
	pki := testpki.New(t)
	leaf, key := pki.Leaf(t, testpki.LeafOptions{CommonName: "demo-store:dave"})
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemKey := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	good := map[string][]byte{"key.pem": pemKey(key), "chain.pem": pemCert(leaf), "root.pem": pemCert(pki.Root)}
	cases := []struct {
		name   string
		change func(files map[string][]byte)
		want   string
	}{
		{"no key", func(f map[string][]byte) { delete(f, "key.pem") }, "not a directory written by `devicegate enroll`"},
		{"no root", func(f map[string][]byte) { delete(f, "root.pem") }, "not a directory written by `devicegate enroll`"},
		{"key of another certificate", func(f map[string][]byte) { f["key.pem"] = pemKey(otherKey) }, "does not belong to the certificate"},
		{"garbage key", func(f map[string][]byte) { f["key.pem"] = []byte("x") }, "no PKCS#8 private key"},
		{"garbage chain", func(f map[string][]byte) { f["chain.pem"] = []byte("x") }, "no PEM certificate"},
		{"no CA URL in the certificate", func(map[string][]byte) {}, "give --url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string][]byte{}
			for k, v := range good {
				files[k] = v
			}
			c.change(files)
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Renew(context.Background(), RenewOptions{Dir: dir, P12Password: "pw"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(files) {
				t.Fatalf("a refused renewal wrote files: %d entries", len(entries))
			}
		})
	}
}
