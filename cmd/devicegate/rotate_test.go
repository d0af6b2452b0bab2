package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
)

// TestRotateDeviceIntermediateThroughProxies rotates the device
// intermediate under two real proxies (TLS on loopback, the store and the
// CA directory of one data directory): P1 reloads its device
// intermediates every 50 ms, P2 not during the test (a proxy that has not
// reloaded yet). Devices A, C, D enrolled under the old intermediate; the
// root key goes offline and comes back for `ca intermediate new`; after
// `activate` and a CA restart device B is issued by the new one and C
// renews into it. Both generations pass P1; P2 keeps passing the old ones;
// revoking A, then B, refuses each; after `retire` the unrevoked D is
// refused, on a new connection (handshake: retired_intermediate) and on
// its open one (issuer_retired); a certificate of a third intermediate
// that chains to no root of ours never passes.
func TestRotateDeviceIntermediateThroughProxies(t *testing.T) {
	const user, password = "shop:kim", "kim-backoffice-pw"
	hash, err := secrets.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	bo := httptest.NewServer(backoffice.New([]backoffice.User{{Name: user, PasswordHash: hash}}))
	defer bo.Close()
	dir := t.TempDir()
	proxyConf := func(n int) string {
		cfg := filepath.Join(dir, fmt.Sprintf("devicegate-%d.yaml", n))
		conf := fmt.Sprintf(`data_dir: %s
log: {level: warn}
ca: {listen: 127.0.0.1:0}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  snapshot_file: %s
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
        - {path: /products, point: products}
`, filepath.Join(dir, "data"), filepath.Join(dir, fmt.Sprintf("snapshot-%d.json", n)), bo.URL, bo.URL+"/whoami")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := proxyConf(1)
	cfg2 := proxyConf(2)
	ctx := context.Background()
	a, tenant, sub := protectedShop(t, cfg, "cs-supervisor", 5)
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Keys().Root)
	oldCA := a.ca.Keys().Device

	devA := rotateDevice(t, a.ca, tenant.ID, sub.ID, roots)
	devC := rotateDevice(t, a.ca, tenant.ID, sub.ID, roots)
	devD := rotateDevice(t, a.ca, tenant.ID, sub.ID, roots)
	a.Close()

	p1 := startProxyInProcess(t, cfg, 50*time.Millisecond)
	p2 := startProxyInProcess(t, cfg2, time.Hour)
	highRisk := func(d *rotateDev, p inProcessProxy) func() (int, string) {
		return func() (int, string) {
			if resp, err := d.client.PostForm(p.url+"/login", url.Values{"username": {user}, "password": {password}}); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return proxyGet(d.client, p.url+"/orders/sold")
		}
	}
	for _, d := range []*rotateDev{devA, devC, devD} {
		for _, p := range []inProcessProxy{p1, p2} {
			waitStatus(t, "old device before the rotation", 10*time.Second, highRisk(d, p), http.StatusOK)
		}
	}

	// The root goes offline, comes back from the offline file for a new
	// intermediate, which is activated; the CA restarts.
	offline := filepath.Join(dir, "usb", "root.key")
	if err := os.MkdirAll(filepath.Dir(offline), 0o700); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "ca", "--config", cfg, "root", "export", "--out", offline)
	if code, _, errOut := cli(t, "ca", "--config", cfg, "intermediate", "new"); code == 0 || !strings.Contains(errOut, "offline") {
		t.Fatalf("intermediate new without the root key: exit %d %q", code, errOut)
	}
	mustCLI(t, "ca", "--config", cfg, "intermediate", "new", "--root-key", offline)
	mustCLI(t, "ca", "--config", cfg, "intermediate", "activate", "devices-2")
	a2, err := openApp(ctx, cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	newCA := a2.ca.Keys().Device
	if bytes.Equal(newCA.Raw, oldCA.Raw) {
		t.Fatal("the restarted CA still issues from the old intermediate")
	}

	devB := rotateDevice(t, a2.ca, tenant.ID, sub.ID, roots)
	if devB.issued.Chain[0].CheckSignatureFrom(newCA) != nil || !bytes.Equal(devB.issued.Chain[1].Raw, newCA.Raw) {
		t.Fatal("a new enrollment is not issued by the new intermediate")
	}
	mustCLI(t, "admin", "--config", cfg, "device", "allow-renew", "shop", devC.issued.Device.ID)
	renewedC := rotateRenew(t, a2.ca, devC, roots)
	if renewedC.issued.Chain[0].CheckSignatureFrom(newCA) != nil {
		t.Fatal("a renewal is not issued by the new intermediate")
	}
	for _, d := range []*rotateDev{devA, devB, renewedC, devD} {
		waitStatus(t, "old and new devices at the reloading proxy", 10*time.Second, highRisk(d, p1), http.StatusOK)
	}
	waitStatus(t, "the superseded certificate of C", 10*time.Second, highRisk(devC, p1), http.StatusForbidden)
	// P2 has not reloaded: the old devices keep passing it; the new
	// intermediate's are refused there until it reloads (so proxies
	// reload before `activate`: docs/operations.md).
	for _, d := range []*rotateDev{devA, devD} {
		waitStatus(t, "old device at the proxy that has not reloaded", 10*time.Second, highRisk(d, p2), http.StatusOK)
	}
	if status, reason := highRisk(devB, p2)(); status != 0 {
		t.Fatalf("a proxy that has not reloaded: new intermediate's device got %d %s", status, reason)
	}

	// Revocation works for both generations.
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", devA.issued.Device.Serial)
	for _, p := range []inProcessProxy{p1, p2} {
		waitStatus(t, "revoked old device", 10*time.Second, highRisk(devA, p), http.StatusForbidden)
	}
	waitStatus(t, "unrevoked new device", 10*time.Second, highRisk(devB, p1), http.StatusOK)
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", devB.issued.Device.Serial)
	waitStatus(t, "revoked new device", 10*time.Second, highRisk(devB, p1), http.StatusForbidden)
	waitStatus(t, "unrevoked old device", 10*time.Second, highRisk(devD, p1), http.StatusOK)

	// Retire the old intermediate: D (never revoked) is refused, on its
	// open connection and on a new one.
	mustCLI(t, "ca", "--config", cfg, "intermediate", "retire", "devices", "--force") // D is still on it
	waitStatus(t, "old device on its open connection after the retirement", 10*time.Second, highRisk(devD, p1), http.StatusForbidden)
	if _, reason := proxyGet(devD.client, p1.url+"/orders/sold"); reason != "issuer_retired" {
		t.Fatalf("open connection of a retired intermediate's device: reason %q, want issuer_retired", reason)
	}
	devD.client.CloseIdleConnections()
	if status, msg := proxyGet(devD.client, p1.url+"/products"); status != 0 {
		t.Fatalf("new connection of a retired intermediate's device: %d %s", status, msg)
	}
	if n, err := failoverMetric(p1.metricsURL, `devicegate_proxy_handshake_failures_total{reason="retired_intermediate"}`); err != nil || n < 1 {
		t.Fatalf("handshake refusals for the retired intermediate: %v %v", n, err)
	}
	waitStatus(t, "renewed device after the retirement", 10*time.Second, highRisk(renewedC, p1), http.StatusOK)

	// A certificate for B's identity from a third intermediate, of a root
	// that is not ours, sent with its intermediate: refused in the handshake.
	foreign := foreignDevice(t, devB.issued.Chain[0], roots)
	if status, msg := proxyGet(foreign, p1.url+"/products"); status != 0 {
		t.Fatalf("a foreign intermediate's certificate was accepted: %d %s", status, msg)
	}
	if n, err := failoverMetric(p1.metricsURL, `devicegate_proxy_handshake_failures_total{reason="unknown_authority"}`); err != nil || n < 1 {
		t.Fatalf("handshake refusals for an unknown authority: %v %v", n, err)
	}
}

// rotateDev is a device certificate with its client (its own cookie jar
// and connections).
type rotateDev struct {
	issued *ca.Issued
	key    *ecdsa.PrivateKey
	client *http.Client
}

func rotateDevice(t *testing.T, authority *ca.Authority, tenantID, subID string, roots *x509.CertPool) *rotateDev {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Issue(context.Background(), ca.IssueRequest{TenantID: tenantID, SubID: subID, CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	return &rotateDev{issued: is, key: key, client: deviceClient(is.Chain, key, roots)}
}

func rotateRenew(t *testing.T, authority *ca.Authority, d *rotateDev, roots *x509.CertPool) *rotateDev {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Renew(context.Background(), d.issued.Chain[0], pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return &rotateDev{issued: is, key: key, client: deviceClient(is.Chain, key, roots)}
}

func deviceClient(chain []*x509.Certificate, key *ecdsa.PrivateKey, roots *x509.CertPool) *http.Client {
	cert := tls.Certificate{PrivateKey: key}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	jar, _ := cookiejar.New(nil)
	// It sends its certificate whatever CAs the server names (as a user
	// picking it by hand, or an attacker, would).
	send := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, GetClientCertificate: send}}}
}

// foreignDevice copies victim's identity into a certificate of another
// CA's device intermediate.
func foreignDevice(t *testing.T, victim *x509.Certificate, roots *x509.CertPool) *http.Client {
	t.Helper()
	otherDir := filepath.Join(t.TempDir(), "other-ca")
	if err := ca.Init(otherDir, ca.InitOptions{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	other, err := ca.LoadKeys(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: victim.Subject.CommonName}, URIs: victim.URIs,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, other.Device, &key.PublicKey, other.DeviceKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return deviceClient([]*x509.Certificate{leaf, other.Device}, key, roots)
}

// inProcessProxy is a `devicegate proxy` running in this test process.
type inProcessProxy struct{ url, metricsURL string }

// startProxyInProcess runs `devicegate proxy --config cfg` with device
// intermediates reloaded every reloadEvery, until the test ends.
func startProxyInProcess(t *testing.T, cfg string, reloadEvery time.Duration) inProcessProxy {
	t.Helper()
	deviceCAReloadEvery = reloadEvery // read once, before the proxy prints its URLs
	t.Cleanup(func() { deviceCAReloadEvery = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"proxy", "--config", cfg}, strings.NewReader(""), pw, &errb)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	var p inProcessProxy
	sc := bufio.NewScanner(pr)
	for p.url == "" || p.metricsURL == "" {
		if !sc.Scan() {
			t.Fatalf("proxy exited before printing its URLs")
		}
		if v, ok := strings.CutPrefix(sc.Text(), "proxy_url: "); ok {
			p.url = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "metrics_url: "); ok {
			p.metricsURL = v
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return p
}
