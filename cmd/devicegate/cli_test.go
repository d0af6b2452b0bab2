package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/devicegate/devicegate/ca"
)

// cli runs one devicegate command in-process and returns exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != 0 {
		t.Fatalf("devicegate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// startDemo runs `devicegate demo --config F` until the test ends and
// returns what it wrote to demo.json.
func startDemo(t *testing.T, cfg string) (demoInfo, func()) {
	t.Helper()
	dataDir := filepath.Join(filepath.Dir(cfg), "data")
	os.Remove(filepath.Join(dataDir, "demo.json"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() { done <- run(ctx, []string{"demo", "--config", cfg}, strings.NewReader(""), &out, &errb) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(dataDir, "demo.json"))
		if err == nil {
			var info demoInfo
			if err := json.Unmarshal(data, &info); err != nil {
				t.Fatal(err)
			}
			stop := func() {
				cancel()
				select {
				case code := <-done:
					if code != 0 {
						t.Errorf("demo exited %d: %s", code, errb.String())
					}
				case <-time.After(15 * time.Second):
					t.Error("demo did not stop on cancel")
				}
			}
			t.Cleanup(cancel)
			return info, stop
		}
		select {
		case code := <-done:
			t.Fatalf("demo exited %d: %s%s", code, out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("demo did not write demo.json")
		}
	}
}

func writeConfig(t *testing.T) string {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "devicegate.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: data\nca:\n  listen: 127.0.0.1:0\nproxy:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\nportal:\n  listen: 127.0.0.1:0\ndemo:\n  backoffice_listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWalkthrough follows the README: sub-account, protection, enrollment,
// listing, quota refusal, revocation, CRL; then a restart on the same data.
func TestWalkthrough(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	info, stop := startDemo(t, cfg)
	if info.CAURL == "" || info.OwnerPassword == "" || len(info.BackofficeUsers) < 2 || info.RootCAFile == "" {
		t.Fatalf("demo.json: %+v", info)
	}
	backofficeLogin(t, info)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("correct-horse-battery\n"), 0o600)

	mustCLI(t, "admin", "--config", cfg, "sub", "add", "demo-store:dave", "--position", "cs-supervisor", "--password-file", pw)
	if out := mustCLI(t, "admin", "--config", cfg, "sub", "phone", "demo-store:dave"); !strings.HasPrefix(out, "otpauth://totp/") {
		t.Fatalf("sub phone printed %q", out)
	}
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "demo-store:dave", "--devices", "1")
	code := strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", "demo-store:dave"))
	if strings.Count(code, "\n") != 0 || !strings.HasPrefix(code, "DG-") {
		t.Fatalf("ticket printed %q", code)
	}
	out := filepath.Join(dir, "pc1")
	mustCLI(t, "enroll", "--url", info.CAURL, "--code", code, "--out", out, "--label", "front desk",
		"--root", info.RootCAFile, "--p12-password-file", pw)
	for name, mode := range map[string]os.FileMode{"key.pem": 0o600, "device.p12": 0o600, "cert.pem": 0o644, "chain.pem": 0o644} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v mode %v", name, err, st.Mode().Perm())
		}
	}
	p12, _ := os.ReadFile(filepath.Join(out, "device.p12"))
	if _, leaf, _, err := pkcs12.DecodeChain(p12, "correct-horse-battery"); err != nil || leaf.Subject.CommonName != "demo-store:dave" {
		t.Fatalf("device.p12: %v", err)
	}
	if _, _, _, err := pkcs12.DecodeChain(p12, "wrong-password"); err == nil {
		t.Fatal("device.p12 opens with a wrong password")
	}

	// The quota is full: the second computer gets the limit message.
	code2 := strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", "demo-store:dave"))
	rc, _, errOut := cli(t, "enroll", "--url", info.CAURL, "--code", code2, "--out", filepath.Join(dir, "pc2"),
		"--fingerprint", info.RootFingerprint, "--p12-password-file", pw)
	if rc == 0 || !strings.Contains(errOut, ca.QuotaMessageEN) || !strings.Contains(errOut, ca.QuotaMessageZH) {
		t.Fatalf("over quota: exit %d, %q", rc, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "pc2", "key.pem")); err == nil {
		t.Fatal("a refused enrollment left a key behind")
	}

	var listing struct {
		Installed int `json:"installed"`
		Limit     int `json:"limit"`
		Devices   []struct {
			ID, Serial, Status, Label string
		} `json:"devices"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "sub", "devices", "demo-store:dave", "--json")), &listing); err != nil {
		t.Fatal(err)
	}
	if listing.Installed != 1 || listing.Limit != 1 || len(listing.Devices) != 1 || listing.Devices[0].Label != "front desk" {
		t.Fatalf("devices: %+v", listing)
	}
	if text := mustCLI(t, "admin", "--config", cfg, "sub", "devices", "demo-store:dave"); !strings.Contains(text, "Installed (1/1)") {
		t.Fatalf("devices text: %q", text)
	}

	revoked := mustCLI(t, "admin", "--config", cfg, "device", "revoke", listing.Devices[0].Serial, "--reason", "keyCompromise")
	for _, w := range []string{"device " + listing.Devices[0].ID + " of demo-store:dave revoked", "reason keyCompromise",
		"proxies refuse it", "devicegate admin sub ticket demo-store:dave"} {
		if !strings.Contains(revoked, w) {
			t.Errorf("device revoke said %q, want %q", revoked, w)
		}
	}
	crlPEM, err := os.ReadFile(filepath.Join(dir, "data", "ca", "crl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(crlPEM)
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range crl.RevokedCertificateEntries {
		found = found || e.SerialNumber.Text(16) == listing.Devices[0].Serial
	}
	if !found {
		t.Fatal("revoked serial is not in the CRL file")
	}
	// The revocation freed the slot: the unused code works now.
	mustCLI(t, "enroll", "--url", info.CAURL, "--code", code2, "--out", filepath.Join(dir, "pc3"),
		"--fingerprint", info.RootFingerprint, "--p12-password-file", pw)
	throughProxy(t, cfg, info, dir, pw)
	checkMetrics(t, info)
	oversizedHeadersRefused(t, info)
	mustCLI(t, "admin", "--config", cfg, "audit", "verify", "demo-store")
	// Departure revokes the remaining device; restoring says that both
	// certificates stay revoked and how to enroll again.
	sayings := []struct {
		args []string
		want []string
	}{
		{[]string{"depart"}, []string{"demo-store:dave is departed", "1 device certificate(s) revoked (serials ", "sub restore demo-store:dave"}},
		{[]string{"restore"}, []string{"demo-store:dave is active", "its 2 earlier device certificate(s) stay revoked", "devicegate admin sub ticket demo-store:dave"}},
		{[]string{"freeze"}, []string{"demo-store:dave is frozen", "no device certificate was active"}},
	}
	for _, s := range sayings {
		said := mustCLI(t, append(append([]string{"admin", "--config", cfg, "sub"}, s.args...), "demo-store:dave")...)
		for _, w := range s.want {
			if !strings.Contains(said, w) {
				t.Errorf("sub %s said %q, want %q", s.args[0], said, w)
			}
		}
	}
	stop()

	// A second start reuses the data and the first-login credentials.
	again, stop2 := startDemo(t, cfg)
	if again.OwnerPassword != info.OwnerPassword || again.RootFingerprint != info.RootFingerprint {
		t.Fatal("second demo start did not reuse the data")
	}
	stop2()
}

// TestCLIRefusesBadInput: every refusal exits non-zero with a message on
// stderr and changes nothing.
// `admin owner set` bootstraps the owner's portal login; the password is
// printed once, never stored in clear, and a phone reset is recorded.
func TestAdminOwnerSet(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	out := mustCLI(t, "admin", "--config", cfg, "owner", "set", "shop")
	if !strings.Contains(out, "first portal login binds the owner's phone") || !strings.Contains(out, "password: ") {
		t.Fatalf("owner set: %q", out)
	}
	pw := strings.TrimSpace(out[strings.Index(out, "password: ")+len("password: "):])
	audit := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json")
	if !strings.Contains(audit, "tenant.owner_login") || strings.Contains(audit, pw) {
		t.Fatal("owner login change not audited, or the password leaked into the audit log")
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("a-chosen-password-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "admin", "--config", cfg, "owner", "set", "shop", "--password-file", pwFile, "--reset-phone"); strings.Contains(out, "password:") {
		t.Fatalf("a chosen password was printed: %q", out)
	}
}

func TestCLIRefusesBadInput(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:alice", "--role", "finance")
	before := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json")
	tests := [][]string{
		{"admin", "--config", cfg, "store", "add", "shop"},
		{"admin", "--config", cfg, "store", "add", "Bad Name"},
		{"admin", "--config", cfg, "sub", "add", "shop:alice", "--role", "finance"},
		{"admin", "--config", cfg, "sub", "add", "shop:a:b", "--role", "finance"},
		{"admin", "--config", cfg, "sub", "add", "shop:bob", "--role", "boss"},
		{"admin", "--config", cfg, "sub", "add", "shop:bob", "--role", "finance", "--grant", "nope"},
		{"admin", "--config", cfg, "sub", "add", "nostore:bob", "--role", "finance"},
		{"admin", "--config", cfg, "sub", "protect", "shop:alice", "--devices", "6"},
		{"admin", "--config", cfg, "sub", "protect", "shop:alice", "--devices", "0"},
		{"admin", "--config", cfg, "sub", "protect", "shop:alice", "--devices", "2"}, // phone verification first
		{"admin", "--config", cfg, "sub", "protect", "shop:ghost", "--devices", "2"},
		{"admin", "--config", cfg, "sub", "ticket", "shop:alice"}, // not protected
		{"admin", "--config", cfg, "device", "revoke", "deadbeef"},
		{"admin", "--config", cfg, "device", "revoke", "deadbeef", "--reason", "removeFromCRL"},
		{"admin", "--config", cfg, "sub", "fly", "shop:alice"},
		{"admin", "--config", cfg, "owner", "set", "nostore"},
		{"admin", "--config", cfg, "owner", "set", "shop", "--password-file", "/nonexistent"},
		{"enroll", "--url", "http://example.com", "--code", "DG-X", "--out", t.TempDir(), "--fingerprint", "00"},
	}
	for _, args := range tests {
		t.Run(strings.ReplaceAll(strings.Join(args, " "), cfg, "CFG"), func(t *testing.T) {
			code, _, errOut := cli(t, args...)
			if code == 0 || errOut == "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
		})
	}
	if after := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json"); after != before {
		t.Fatal("refused commands wrote to the audit log")
	}
	if code, out, _ := cli(t, "--help"); code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "enroll") {
		t.Fatalf("--help: %d %q", code, out)
	}
}

// backofficeLogin logs in to the demo back-office app with a seeded
// sub-account, the form POST the acceptance checks use.
func backofficeLogin(t *testing.T, info demoInfo) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	u := info.BackofficeUsers[0]
	resp, err := c.PostForm(info.BackofficeURL+"/login", url.Values{"username": {u.Name}, "password": {u.Password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(info.BackofficeURL + "/orders/sold")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), u.Name) {
		t.Fatalf("back-office /orders/sold as %s: %d", u.Name, resp.StatusCode)
	}
}

// proxyStatus logs in to the back-office app through the proxy with a
// device certificate from dir and returns the status of /orders/sold.
func proxyStatus(t *testing.T, info demoInfo, dir, user, password string) int {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := os.ReadFile(info.RootCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	resp, err := c.PostForm(info.ProxyURL+"/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(info.ProxyURL + "/orders/sold")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// throughProxy: a seeded staff member (known to the demo app) enrolls,
// passes the proxy to a high-risk page with the device certificate and the
// app session, and is refused within a second of the owner's revocation.
func throughProxy(t *testing.T, cfg string, info demoInfo, dir, p12pw string) {
	t.Helper()
	alice := info.BackofficeUsers[0]
	code := strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", alice.Name))
	out := filepath.Join(dir, "alice-pc")
	mustCLI(t, "enroll", "--url", info.CAURL, "--code", code, "--out", out, "--root", info.RootCAFile, "--p12-password-file", p12pw)
	if got := proxyStatus(t, info, out, alice.Name, alice.Password); got != http.StatusOK {
		t.Fatalf("proxy /orders/sold with %s's device and session: %d", alice.Name, got)
	}
	var listing struct {
		Devices []struct{ ID string } `json:"devices"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "sub", "devices", alice.Name, "--json")), &listing); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", listing.Devices[0].ID)
	deadline := time.Now().Add(time.Second)
	for proxyStatus(t, info, out, alice.Name, alice.Password) != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatal("revoked device still passes the proxy after 1 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Both decisions reach the store's audit log (written asynchronously).
	waitForProxyDecisions(t, cfg, alice.Name)
}

// waitForProxyDecisions waits up to 5 s for an allow and a deny of the
// proxy about target in the audit log of demo-store.
func waitForProxyDecisions(t *testing.T, cfg, target string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		audit := mustCLI(t, "admin", "--config", cfg, "audit", "demo-store", "--target", target)
		if strings.Contains(audit, "proxy.allow") && strings.Contains(audit, "proxy.deny") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy decisions missing from the audit log:\n%s", audit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkMetrics reads the proxy's metrics after the walkthrough.
func checkMetrics(t *testing.T, info demoInfo) {
	t.Helper()
	resp, err := http.Get(info.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`devicegate_proxy_requests_total{decision="allow",permission="orders.sold",reason="ok",upstream="backoffice"}`,
		`devicegate_proxy_requests_total{decision="deny",permission="orders.sold",reason="device_not_active",upstream="backoffice"}`,
		"devicegate_proxy_policy_seq", "devicegate_proxy_policy_staleness_seconds", "devicegate_proxy_open_connections",
		"devicegate_proxy_audit_dropped_total 0", "devicegate_proxy_fast_path_requests_total", "devicegate_proxy_handoffs_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// oversizedHeadersRefused: the real proxy listener refuses header blocks
// over its 32 KiB limit with 431 before any routing.
func oversizedHeadersRefused(t *testing.T, info demoInfo) {
	t.Helper()
	rootPEM, err := os.ReadFile(info.RootCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest(http.MethodGet, info.ProxyURL+"/products", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 40<<10))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("40 KiB of headers: %d, want 431", resp.StatusCode)
	}
}
