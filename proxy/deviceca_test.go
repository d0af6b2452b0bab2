package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
)

// TestRotateDeviceCAs: a listener configured with DeviceCAs follows Set
// without a restart, over real TLS on loopback: a new intermediate's
// devices pass once it is added, the old one's keep passing during the
// overlap, a retired one's are refused and named, a third CA's never
// pass; an empty set (a broken reload) changes nothing; a chain verified
// before a retirement is verified again after it.
func TestRotateDeviceCAs(t *testing.T) {
	oldPKI, newPKI, foreign := testpki.New(t), testpki.New(t), testpki.New(t)
	leaf := func(p *testpki.PKI) tls.Certificate {
		c, k := p.Leaf(t, testpki.LeafOptions{CommonName: "dev", URIs: []string{"spiffe://test.local/t/s/d"}})
		return p.TLSCertificate(c, k)
	}
	oldDev, newDev, foreignDev := leaf(oldPKI), leaf(newPKI), leaf(foreign)

	cas := NewDeviceCAs([]*x509.Certificate{oldPKI.Intermediate}, nil)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{oldPKI.ServerCert(t, "127.0.0.1")}}
	ConfigureDeviceTLS(srv.TLS, cas, nil)
	srv.StartTLS()
	defer srv.Close()
	var named int // CAs the server named in its last certificate request
	passes := func(cert tls.Certificate) bool {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
			RootCAs: oldPKI.RootPool(),
			GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				named = len(cri.AcceptableCAs)
				return &cert, nil
			},
		}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	check := func(step string, want map[string]bool) {
		t.Helper()
		for name, cert := range map[string]tls.Certificate{"old": oldDev, "new": newDev, "foreign": foreignDev} {
			if got := passes(cert); got != want[name] {
				t.Errorf("%s: %s device passes = %v, want %v", step, name, got, want[name])
			}
		}
	}
	check("before", map[string]bool{"old": true})

	both := []*x509.Certificate{oldPKI.Intermediate, newPKI.Intermediate}
	if !cas.Set(both, nil) || cas.Set(both, nil) {
		t.Fatal("Set does not report a change exactly once")
	}
	check("overlap", map[string]bool{"old": true, "new": true})
	if named != 2 { // browsers offer only certificates of the CAs named
		t.Fatalf("the server names %d CAs during the overlap, want 2", named)
	}
	if cas.Set(nil, nil) {
		t.Fatal("an empty set was taken")
	}
	check("after an empty reload", map[string]bool{"old": true, "new": true})

	cas.Set([]*x509.Certificate{newPKI.Intermediate}, []*x509.Certificate{oldPKI.Intermediate})
	check("retired", map[string]bool{"new": true})
	oldLeaf, newLeaf := oldDev.Leaf, newDev.Leaf
	if oldLeaf == nil {
		oldLeaf, _ = x509.ParseCertificate(oldDev.Certificate[0])
		newLeaf, _ = x509.ParseCertificate(newDev.Certificate[0])
	}
	if !cas.issuedByRetired(oldLeaf) || cas.issuedByRetired(newLeaf) {
		t.Fatal("issuedByRetired does not tell the retired intermediate's certificates")
	}
	err := srv.TLS.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{oldLeaf}})
	if err == nil || !strings.Contains(err.Error(), "retired device intermediate") {
		t.Fatalf("retired intermediate's certificate: %v", err)
	}
}
