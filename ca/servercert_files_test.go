package ca

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
)

// writePair writes a chain and its key as PEM files.
func writePair(t *testing.T, dir string, chain [][]byte, key crypto.Signer) (string, string) {
	t.Helper()
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// An operator's own certificate is served, with and without SNI.
func TestServerTLSFromFiles(t *testing.T) {
	pki := testpki.New(t)
	good := pki.ServerCert(t, "localhost", "127.0.0.1")
	certFile, keyFile := writePair(t, t.TempDir(), good.Certificate, good.PrivateKey.(crypto.Signer))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc, err := ServerTLSFromFiles(ctx, certFile, keyFile, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), TLSConfig: tc}
	go srv.Serve(tls.NewListener(ln, tc))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root)
	for _, name := range []string{"localhost", "127.0.0.1"} { // SNI, and no SNI for an IP
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(good.Leaf) {
			t.Fatalf("%s: served another certificate", name)
		}
		conn.Close()
	}

	// Bad files stop start-up.
	expiredLeaf, expiredKey := pki.Leaf(t, testpki.LeafOptions{DNSNames: []string{"localhost"}, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	noSANLeaf, noSANKey := pki.Leaf(t, testpki.LeafOptions{CommonName: "x", EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	other := pki.ServerCert(t, "localhost")
	tests := []struct {
		name      string
		cert, key string
	}{
		{"missing files", filepath.Join(t.TempDir(), "nope.crt"), filepath.Join(t.TempDir(), "nope.key")},
		{"key of another certificate", certFile, func() string {
			_, k := writePair(t, t.TempDir(), other.Certificate, other.PrivateKey.(crypto.Signer))
			return k
		}()},
	}
	c, k := writePair(t, t.TempDir(), [][]byte{expiredLeaf.Raw}, expiredKey)
	tests = append(tests, struct{ name, cert, key string }{"expired", c, k})
	c, k = writePair(t, t.TempDir(), [][]byte{noSANLeaf.Raw}, noSANKey)
	tests = append(tests, struct{ name, cert, key string }{"no host names", c, k})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ServerTLSFromFiles(ctx, tc.cert, tc.key, t.TempDir()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
