package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
)

// rogueCA is a TLS server that speaks the enrollment API but misbehaves in
// the ways a client must catch. It is an attacker, not a stand-in for the CA
// (the cmd walkthrough test enrolls against the real one).
type rogueCA struct {
	srv     *httptest.Server
	rootPEM []byte
	root    *x509.Certificate
	key     *ecdsa.PrivateKey
	mode    string // "ok", "other-key", "quota", "cut-once", "down", "v2"
	mu      sync.Mutex
	posts   []string // enrollment bodies received
	version string   // the API version the last enrollment stated
}

func newRogueCA(t *testing.T, mode string) *rogueCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rogue root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	root, _ := x509.ParseCertificate(der)
	r := &rogueCA{root: root, key: key, mode: mode, rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	// Its TLS server certificate chains to the root it hands out.
	skey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stmpl := &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	sder, _ := x509.CreateCertificate(rand.Reader, stmpl, root, &skey.PublicKey, key)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{sder}, PrivateKey: skey}}}
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rogueCA) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/v1/roots.pem" {
		w.Write(r.rootPEM)
		return
	}
	raw, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.posts = append(r.posts, string(raw))
	r.version = req.Header.Get(api.VersionHeader)
	n := len(r.posts)
	r.mu.Unlock()
	switch {
	case r.mode == "cut-once" && n == 1: // the answer is lost
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	case r.mode == "down":
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	req.Body = io.NopCloser(strings.NewReader(string(raw)))
	if r.mode == "quota" {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":{"code":"quota_exceeded","message":"The number of installed certificates has reached the limit. Contact the main account.","message_zh":"您安装的数字证书已达上限，如需安装请联系主账号"}}`))
		return
	}
	var body api.EnrollRequest
	json.NewDecoder(req.Body).Decode(&body)
	block, _ := pem.Decode([]byte(body.CSR))
	csr, _ := x509.ParseCertificateRequest(block.Bytes)
	pub := csr.PublicKey
	if r.mode == "other-key" {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = &other.PublicKey
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, r.root, pub, r.key)
	leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if r.mode == "v2" { // a later major version: its answer means something else
		w.Header().Set(api.VersionHeader, "2.0")
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(api.Certificate{DeviceID: "d", Serial: "2", SubAccount: "shop:a", NotAfter: time.Now(),
		Certificate: string(leaf), Chain: string(leaf), Installed: 1, Limit: 1})
}

func (r *rogueCA) fingerprint() string {
	sum := sha256.Sum256(r.root.Raw)
	return hex.EncodeToString(sum[:])
}

func opts(t *testing.T, url string, trust Trust) Options {
	return Options{URL: url, Code: "DG-CODE", OutDir: filepath.Join(t.TempDir(), "out"), P12Password: "pw-123456", Trust: trust}
}

func TestEnrollRefusals(t *testing.T) {
	ctx := context.Background()
	ok := newRogueCA(t, "ok")
	otherKey := newRogueCA(t, "other-key")
	quota := newRogueCA(t, "quota")
	v2 := newRogueCA(t, "v2")
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"wrong fingerprint", opts(t, ok.srv.URL, Trust{Fingerprint: strings.Repeat("ab", 32)}), "does not match the fingerprint"},
		{"malformed fingerprint", opts(t, ok.srv.URL, Trust{Fingerprint: "xyz"}), "64 hex digits"},
		{"no trust", opts(t, ok.srv.URL, Trust{}), "required"},
		{"plain http", opts(t, strings.Replace(ok.srv.URL, "https", "http", 1), Trust{Fingerprint: ok.fingerprint()}), "https"},
		{"certificate for another key", opts(t, otherKey.srv.URL, Trust{Fingerprint: otherKey.fingerprint()}), "another key"},
		{"answer of another major version", opts(t, v2.srv.URL, Trust{Fingerprint: v2.fingerprint()}), "unsupported devicegate API version 2"},
		{"no password", func() Options {
			o := opts(t, ok.srv.URL, Trust{Fingerprint: ok.fingerprint()})
			o.P12Password = ""
			return o
		}(), "password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Enroll(ctx, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(tc.o.OutDir); err == nil {
				entries, _ := os.ReadDir(tc.o.OutDir)
				if len(entries) > 0 {
					t.Fatalf("refused enrollment left %d files", len(entries))
				}
			}
		})
	}
	_, err := Enroll(ctx, opts(t, quota.srv.URL, Trust{Fingerprint: quota.fingerprint()}))
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "quota_exceeded" || !strings.Contains(apiErr.MessageZH, "上限") {
		t.Fatalf("quota: %v", err)
	}

	// The legitimate case against the same server (an older CA that states
	// no version), then no overwrite.
	o := opts(t, ok.srv.URL, Trust{Fingerprint: ok.fingerprint()})
	if _, err := Enroll(ctx, o); err != nil {
		t.Fatal(err)
	}
	if ok.version != api.Version {
		t.Fatalf("the client stated version %q", ok.version)
	}
	if _, err := Enroll(ctx, o); err == nil || !strings.Contains(err.Error(), "already holds a key.pem") {
		t.Fatalf("overwrite: %v", err)
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{"secret\n": "secret", "secret\r\nnext\n": "secret", "": "", "\n": ""} {
		p := filepath.Join(dir, "pw")
		os.WriteFile(p, []byte(content), 0o600)
		got, err := ReadPasswordFile(p)
		if (want == "") != (err != nil) || got != want {
			t.Errorf("ReadPasswordFile(%q) = %q, %v", content, got, err)
		}
	}
}

func FuzzParseCerts(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseCerts(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
	})
}

func TestParseFingerprint(t *testing.T) {
	hexSum := strings.Repeat("0a", 32)
	colons := strings.ToUpper(strings.Join(strings.Split(strings.Repeat("0a ", 32), " ")[:32], ":"))
	for _, c := range []struct {
		in string
		ok bool
	}{
		{hexSum, true}, {colons, true}, {"  " + hexSum + "\n", true},
		{"", false}, {hexSum[:62], false}, {hexSum + "00", false}, {strings.Repeat("zz", 32), false},
	} {
		got, err := ParseFingerprint(c.in)
		if (err == nil) != c.ok || c.ok && len(got) != 32 {
			t.Errorf("ParseFingerprint(%q) = %x, %v; want ok=%v", c.in, got, err, c.ok)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("AB:", 31) + "AB")
	f.Fuzz(func(t *testing.T, s string) {
		if got, err := ParseFingerprint(s); err == nil && len(got) != 32 {
			t.Fatalf("%q gave %d bytes", s, len(got))
		}
	})
}

// TestEnrollRetriesLostAnswer: an answer lost after the request was sent
// (connection cut, 5xx) is asked for again with the identical request
// (same code, same CSR, so the CA can hand out the certificate it
// recorded), a few times with a bound; a refusal (4xx) is not retried.
func TestEnrollRetriesLostAnswer(t *testing.T) {
	saved := retryDelays
	retryDelays = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	t.Cleanup(func() { retryDelays = saved })
	ctx := context.Background()

	cut := newRogueCA(t, "cut-once")
	if _, err := Enroll(ctx, opts(t, cut.srv.URL, Trust{Fingerprint: cut.fingerprint()})); err != nil {
		t.Fatalf("after a cut answer: %v", err)
	}
	if len(cut.posts) != 2 || cut.posts[0] != cut.posts[1] {
		t.Fatalf("%d requests; the retry must be identical to the first", len(cut.posts))
	}

	down := newRogueCA(t, "down")
	o := opts(t, down.srv.URL, Trust{Fingerprint: down.fingerprint()})
	_, err := Enroll(ctx, o)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Fatalf("CA down: %v", err)
	}
	if len(down.posts) != 3 {
		t.Fatalf("CA down: %d tries, want 3", len(down.posts))
	}
	if entries, _ := os.ReadDir(o.OutDir); len(entries) > 0 {
		t.Fatalf("a failed enrollment left %d files", len(entries))
	}

	quota := newRogueCA(t, "quota")
	if _, err := Enroll(ctx, opts(t, quota.srv.URL, Trust{Fingerprint: quota.fingerprint()})); err == nil || len(quota.posts) != 1 {
		t.Fatalf("a refusal was retried (%d tries): %v", len(quota.posts), err)
	}
}
