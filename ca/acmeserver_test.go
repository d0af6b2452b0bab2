package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/smallstep/certificates/acme"
	xacme "golang.org/x/crypto/acme"
)

// acmeCA is the CA's HTTPS API with the internal ACME service mounted,
// certifying only 127.0.0.1 and names under shop.internal.
// Its state is in a bbolt file unless driver and source say otherwise.
func acmeCA(t *testing.T, f *fixture, driver, source string) (url string, roots *x509.CertPool) {
	t.Helper()
	if driver == "" {
		driver, source = "bbolt", filepath.Join(f.dir, "acme.bolt")
	}
	a, err := NewACMEServer(f.ca.Keys(), ACMEServerOptions{
		Hosts: []string{"127.0.0.1", "*.shop.internal"}, Driver: driver, DataSource: source,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srvTLS, err := ServerTLS(f.ctx, f.ca.Keys(), filepath.Join(f.dir, "certs"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	api := NewServer(f.ca)
	api.MountACME(a)
	// (httptest would add its own certificate, served to clients without SNI)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api, TLSConfig: srvTLS, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(tls.NewListener(ln, srvTLS))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String() + "/acme/" + ACMEProvisioner + "/directory", f.ca.Keys().RootPool()
}

// A proxy on another machine gets its server certificate from our CA's
// internal ACME service: TLS-ALPN-01 really validated against its
// listener, signed by the server intermediate, serverAuth only. The ACME
// state is in a bbolt file (single node) or in PostgreSQL (several nodes).
func TestInternalACMEIssuesServerCertificate(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { testInternalACMEIssues(t, "", "") })
	t.Run("postgresql", func(t *testing.T) {
		testInternalACMEIssues(t, "postgresql", pgtest.Start(t).NewDatabase(t))
	})
}

func testInternalACMEIssues(t *testing.T, driver, source string) {
	f := newFixture(t)
	dir, roots := acmeCA(t, f, driver, source)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	acme.InsecurePortTLSALPN01 = port // the validator dials 443 otherwise
	t.Cleanup(func() { acme.InsecurePortTLSALPN01 = 0 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc, start, err := ServerTLSFromACME(ctx, ACMEOptions{DirectoryURL: dir, Hosts: []string{"127.0.0.1"}, Roots: roots, TLSALPNPort: port}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leaf := helloOnceCertified(t, ctx, ln, tc, start, roots)
	if got := leaf.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("EKU %v, want serverAuth only", got)
	}
	if leaf.CheckSignatureFrom(f.ca.Keys().Server) != nil {
		t.Fatal("not signed by the server intermediate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: f.ca.Keys().DevicePool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("an ACME server certificate verifies as a device certificate")
	}
}

// Names outside the configured hosts are refused when the order is
// placed: no challenge is ever sent to them and nothing is signed.
func TestInternalACMERefusesOtherNames(t *testing.T) {
	f := newFixture(t)
	dir, roots := acmeCA(t, f, "", "")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &xacme.Client{Key: key, DirectoryURL: dir, HTTPClient: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	ctx := context.Background()
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	for _, ids := range [][]xacme.AuthzID{
		xacme.DomainIDs("evil.example"),
		xacme.DomainIDs("shop.internal.evil.example"),
		xacme.IPIDs("10.1.2.3"),
		xacme.DomainIDs("pos.shop.internal", "evil.example"),
	} {
		if _, err := c.AuthorizeOrder(ctx, ids); err == nil || !strings.Contains(err.Error(), "rejectedIdentifier") {
			t.Errorf("order for %v: %v, want rejectedIdentifier", ids, err)
		}
	}
	// The legitimate name is accepted (validation is not attempted here).
	o, err := c.AuthorizeOrder(ctx, xacme.DomainIDs("pos.shop.internal"))
	if err != nil {
		t.Fatalf("order for an allowed name: %v", err)
	}
	if o.Status != xacme.StatusPending || len(o.AuthzURLs) != 1 {
		t.Fatalf("order %+v", o)
	}
}

// An oversized request is refused before any parsing, with an ACME
// problem document; the service keeps answering.
func TestInternalACMERefusesOversizedBodies(t *testing.T) {
	f := newFixture(t)
	dir, roots := acmeCA(t, f, "", "")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	newAccount := strings.TrimSuffix(dir, "directory") + "new-account"
	resp, err := client.Post(newAccount, "application/jose+json", strings.NewReader(strings.Repeat("a", maxACMEBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "malformed") {
		t.Fatalf("oversized body: %d %s", resp.StatusCode, body)
	}
	resp, err = client.Get(dir)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("directory after an oversized request: %d", resp.StatusCode)
	}
}

// Each client IP has a request budget: past it, requests get 429 with an
// ACME rateLimited problem and a Retry-After, while another IP is served.
func TestInternalACMERequestBudget(t *testing.T) {
	f := newFixture(t)
	a, err := NewACMEServer(f.ca.Keys(), ACMEServerOptions{Hosts: []string{"127.0.0.1"}, Driver: "bbolt", DataSource: filepath.Join(f.dir, "acme.bolt")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	get := func(ip string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "https://ca.test/acme/"+ACMEProvisioner+"/directory", nil)
		r.RemoteAddr = ip + ":40000"
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w
	}
	for i := 0; i < acmeRequestsPerWindow; i++ {
		if w := get("192.0.2.1"); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
	}
	for i := 0; i < 3; i++ {
		w := get("192.0.2.1")
		if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "rateLimited") || w.Header().Get("Retry-After") == "" {
			t.Fatalf("over budget: %d %s", w.Code, w.Body)
		}
	}
	if w := get("192.0.2.2"); w.Code != http.StatusOK {
		t.Fatalf("another address: %d", w.Code)
	}
}

// A listed DNS name certifies itself only; "*.domain" certifies what lies
// under domain (smallstep's policy alone would let gate.shop.internal also
// cover x.gate.shop.internal).
func TestExactHosts(t *testing.T) {
	h := exactHosts{"gate.shop.internal", "*.pos.internal", "127.0.0.1"}
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"gate.shop.internal"}, true},
		{[]string{"GATE.shop.internal"}, true},
		{[]string{"till-1.pos.internal"}, true},
		{[]string{"a.b.pos.internal"}, true},
		{[]string{"x.gate.shop.internal"}, false},
		{[]string{"pos.internal"}, false},
		{[]string{"gate.shop.internal", "evil.example"}, false},
		{[]string{"gate.shop.internal.evil.example"}, false},
		{nil, true}, // IP-only certificates: the name policy checks IPs
	} {
		err := h.Enforce(&x509.Certificate{DNSNames: tc.names})
		if (err == nil) != tc.ok {
			t.Errorf("%v: %v, want ok=%v", tc.names, err, tc.ok)
		}
	}
}
