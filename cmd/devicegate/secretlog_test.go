package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// syncBuffer is a log sink read while the demo writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// secretSet collects every secret a flow used, by what it is.
type secretSet struct {
	t     *testing.T
	items map[string][]string // what -> values
	codes map[string]bool     // 6-digit TOTP codes: searched as whole tokens
}

func (s *secretSet) add(what string, values ...string) {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			s.items[what] = append(s.items[what], v)
		}
	}
}

// addPEM adds a PEM private key: the PEM, each line of its body, the DER
// in base64 and hex, and for an EC key the private scalar.
func (s *secretSet) addPEM(what string, data []byte) {
	s.add(what, string(data))
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		for _, line := range strings.Split(string(data), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				s.add(what+" (PEM line)", line)
			}
		}
		s.add(what+" (DER)", base64.StdEncoding.EncodeToString(b.Bytes), hex.EncodeToString(b.Bytes))
		var ec *ecdsa.PrivateKey
		if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			ec = k
		} else if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			ec, _ = k.(*ecdsa.PrivateKey)
		}
		if ec != nil {
			if d, err := ec.Bytes(); err == nil {
				s.add(what+" (scalar)", hex.EncodeToString(d), base64.StdEncoding.EncodeToString(d))
			}
		}
	}
}

// forms are the spellings a value could reach a log in.
func forms(v string) []string {
	b := []byte(v)
	out := []string{v, url.QueryEscape(v), url.PathEscape(v), hex.EncodeToString(b),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
	if n := strings.NewReplacer("-", "", " ", "").Replace(v); n != v { // enrollment codes as the CA normalizes them
		out = append(out, n, strings.TrimPrefix(n, "DG"))
	}
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(v); err == nil { // TOTP secrets
		out = append(out, strings.ToLower(v))
	}
	return out
}

// leaks searches every log for every secret in every form.
func (s *secretSet) leaks(logs map[string]string) (found []string, searched int) {
	for what, values := range s.items {
		for _, v := range values {
			for _, f := range forms(v) {
				if len(f) < 8 {
					continue
				}
				searched++
				for name, log := range logs {
					if i := strings.Index(log, f); i >= 0 {
						found = append(found, fmt.Sprintf("%s leaks %s (%q) at: %q", name, what, f, log[max(0, i-200):min(len(log), i+len(f)+40)]))
					}
				}
			}
		}
	}
	for c := range s.codes {
		re := regexp.MustCompile(`(^|[^0-9A-Za-z.:_-])` + c + `($|[^0-9A-Za-z.])`)
		for name, log := range logs {
			if loc := re.FindStringIndex(log); loc != nil {
				found = append(found, fmt.Sprintf("%s leaks a TOTP code used in the flow (%s) at: %q", name, c, log[max(0, loc[0]-200):min(len(log), loc[1]+40)]))
			}
		}
	}
	return found, searched
}

// check wants no leak, after checking that a planted one of each kind,
// in a changed spelling, would be found.
func (s *secretSet) check(logs map[string]string) {
	t := s.t
	for what, values := range s.items {
		v := values[len(values)-1]
		planted := "level=DEBUG msg=x v=" + base64.StdEncoding.EncodeToString([]byte(v)) + "\n"
		if found, _ := s.leaks(map[string]string{"planted": planted}); len(found) == 0 {
			t.Errorf("the search would miss %s in base64", what)
		}
	}
	for c := range s.codes {
		if found, _ := s.leaks(map[string]string{"planted": "level=DEBUG code=" + c + " x"}); len(found) == 0 {
			t.Errorf("the search would miss TOTP code %s", c)
		}
	}
	found, searched := s.leaks(logs)
	for _, f := range found {
		t.Error(f)
	}
	n := 0
	for _, l := range logs {
		n += len(l)
	}
	kinds := make([]string, 0, len(s.items))
	for what := range s.items {
		kinds = append(kinds, what)
	}
	slices.Sort(kinds)
	t.Logf("secrets: %s", strings.Join(kinds, ", "))
	t.Logf("searched %d bytes of logs for %d spellings of %d kinds of secrets and %d TOTP codes", n, searched, len(s.items), len(s.codes))
}

// webClient keeps cookies, trusts the demo's root and does not follow
// redirects.
func webClient(t *testing.T, rootFile string, cert *tls.Certificate) *http.Client {
	t.Helper()
	rootPEM, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	tc := &tls.Config{RootCAs: roots}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page is one answer of the portal or the proxy.
type page struct {
	status   int
	body     string
	location string
}

func send(t *testing.T, c *http.Client, method, u string, form url.Values, header http.Header) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, string(b), resp.Header.Get("Location")}
}

var (
	csrfInput  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	csrfMeta   = regexp.MustCompile(`name="dg-csrf" content="([^"]+)"`)
	totpOnPage = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	subLink    = regexp.MustCompile(`href="/owner/subs/([a-z0-9]+)"`)
)

func find(t *testing.T, re *regexp.Regexp, p page, what string) string {
	t.Helper()
	m := re.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no %s on the page (%d):\n%s", what, p.status, p.body)
	}
	return m[1]
}

// TestSecretsNotLogged runs the whole flow on the demo at debug level
// with every log captured (the demo's, and the stderr of every CLI
// command), plus the audit log, collects every secret it used and
// searches for each in its raw, URL, hex and base64 spellings: owner and
// staff passwords (also a mistyped one), TOTP secrets and the codes sent,
// portal session, pre-login and known-browser cookies, CSRF tokens,
// enrollment codes (also an unknown one), the PKCS#12 password, the
// device keys (CLI and browser) with their DER and scalar, the app's
// session cookie sent through the proxy, and the demo's key files (CA
// keys, seal key, cookie key).
func TestSecretsNotLogged(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	s := &secretSet{t: t, items: map[string][]string{}, codes: map[string]bool{}}
	cliLogs := &syncBuffer{}
	runCLI := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
		cliLogs.Write(errb.Bytes())
		if code != 0 {
			t.Fatalf("devicegate %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}

	// The demo at debug level, its log captured.
	demoLog := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--config", cfg, "--log-level", "debug"}, strings.NewReader(""), io.Discard, demoLog)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("demo did not stop")
		}
	}
	t.Cleanup(stop)
	var info demoInfo
	for deadline := time.Now().Add(30 * time.Second); ; {
		if data, err := os.ReadFile(filepath.Join(dir, "data", "demo.json")); err == nil && json.Unmarshal(data, &info) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not start:\n%s", demoLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.add("owner password", info.OwnerPassword)
	for _, u := range info.BackofficeUsers {
		s.add("staff password", u.Password)
		if q, err := url.Parse(u.TOTPURI); err == nil && u.TOTPURI != "" {
			s.add("staff TOTP secret", q.Query().Get("secret"))
		}
	}
	portal := strings.TrimSuffix(info.PortalURL, "/")
	now := time.Now()
	totpCode := func(secret string) string {
		c, err := totp.GenerateCode(secret, now)
		if err != nil {
			t.Fatal(err)
		}
		s.codes[c] = true
		return c
	}

	// Owner: a mistyped password, then password + TOTP (first login binds
	// the phone: the secret is on the page).
	owner := webClient(t, info.RootCAFile, nil)
	p := send(t, owner, "GET", portal+"/owner/login", nil, nil)
	s.add("CSRF token", find(t, csrfInput, p, "login token"))
	send(t, owner, "POST", portal+"/owner/login", url.Values{"csrf": {find(t, csrfInput, p, "login token")}, "store": {info.Store},
		"password": {"Mistyped-Owner-Pw-4711"}}, nil)
	s.add("mistyped password", "Mistyped-Owner-Pw-4711")
	p = send(t, owner, "GET", portal+"/owner/login", nil, nil)
	if p = send(t, owner, "POST", portal+"/owner/login", url.Values{"csrf": {find(t, csrfInput, p, "login token")}, "store": {info.Store},
		"password": {info.OwnerPassword}}, nil); p.status != http.StatusSeeOther || p.location != "/owner/totp" {
		t.Fatalf("owner login: %d %s\n%s", p.status, p.location, p.body)
	}
	p = send(t, owner, "GET", portal+"/owner/totp", nil, nil)
	ownerSecret := find(t, totpOnPage, p, "owner TOTP secret")
	s.add("owner TOTP secret", ownerSecret)
	if p = send(t, owner, "POST", portal+"/owner/totp", url.Values{"csrf": {find(t, csrfInput, p, "CSRF token")},
		"code": {totpCode(ownerSecret)}}, nil); p.status != http.StatusSeeOther {
		t.Fatalf("owner TOTP: %d\n%s", p.status, p.body)
	}

	// A sub-account with a password, phone verification (its TOTP secret)
	// and protection.
	const erinPassword = "Erin-Staff-Pw-90210"
	s.add("staff password", erinPassword)
	p = send(t, owner, "GET", portal+"/owner/", nil, nil)
	ownerCSRF := find(t, csrfInput, p, "CSRF token")
	s.add("CSRF token", ownerCSRF)
	if p = send(t, owner, "POST", portal+"/owner/subs", url.Values{"csrf": {ownerCSRF}, "name": {"erin"}, "role": {"customer-service"},
		"password": {erinPassword}}, nil); p.status != http.StatusSeeOther {
		t.Fatalf("create sub-account: %d\n%s", p.status, p.body)
	}
	p = send(t, owner, "GET", portal+"/owner/?q=erin", nil, nil)
	erinID := find(t, subLink, p, "erin's link")
	p = send(t, owner, "POST", portal+"/owner/subs/"+erinID+"/phone", url.Values{"csrf": {ownerCSRF}}, nil)
	erinSecret := find(t, totpOnPage, p, "erin's TOTP secret")
	s.add("staff TOTP secret", erinSecret)
	if p = send(t, owner, "POST", portal+"/owner/subs/"+erinID+"/protection", url.Values{"csrf": {ownerCSRF}, "devices": {"2"}}, nil); p.status != http.StatusSeeOther {
		t.Fatalf("protection: %d\n%s", p.status, p.body)
	}

	// Staff: a mistyped password, then password + TOTP, and a browser
	// enrollment (the key stays here; only the CSR is sent).
	staff := webClient(t, info.RootCAFile, nil)
	p = send(t, staff, "GET", portal+"/staff/login", nil, nil)
	send(t, staff, "POST", portal+"/staff/login", url.Values{"csrf": {find(t, csrfInput, p, "login token")},
		"username": {info.Store + ":erin"}, "password": {"Mistyped-Staff-Pw-0815"}}, nil)
	s.add("mistyped password", "Mistyped-Staff-Pw-0815")
	p = send(t, staff, "GET", portal+"/staff/login", nil, nil)
	if p = send(t, staff, "POST", portal+"/staff/login", url.Values{"csrf": {find(t, csrfInput, p, "login token")},
		"username": {info.Store + ":erin"}, "password": {erinPassword}}, nil); p.status != http.StatusSeeOther || p.location != "/staff/totp" {
		t.Fatalf("staff login: %d %s\n%s", p.status, p.location, p.body)
	}
	p = send(t, staff, "GET", portal+"/staff/totp", nil, nil)
	if p = send(t, staff, "POST", portal+"/staff/totp", url.Values{"csrf": {find(t, csrfInput, p, "CSRF token")},
		"code": {totpCode(erinSecret)}}, nil); p.status != http.StatusSeeOther {
		t.Fatalf("staff TOTP: %d\n%s", p.status, p.body)
	}
	p = send(t, staff, "GET", portal+"/staff/enroll", nil, nil)
	staffCSRF := find(t, csrfMeta, p, "enrollment CSRF token")
	s.add("CSRF token", staffCSRF)
	browserKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(browserKey)
	s.addPEM("browser private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, browserKey)
	body, _ := json.Marshal(map[string]string{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})), "label": "erin pc"})
	req, _ := http.NewRequest("POST", portal+"/staff/api/enroll", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", staffCSRF)
	if resp, err := staff.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("browser enrollment: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	// CLI: an unknown code, then a one-time code and `devicegate enroll`
	// with a PKCS#12 password; the key is made on this computer.
	p12pw := filepath.Join(dir, "p12pw")
	os.WriteFile(p12pw, []byte("P12-Export-Pw-31337\n"), 0o600)
	s.add("PKCS#12 password", "P12-Export-Pw-31337")
	const unknownCode = "DG-ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"
	s.add("enrollment code (unknown)", unknownCode)
	var out, errb bytes.Buffer
	run(context.Background(), []string{"enroll", "--url", info.CAURL, "--code", unknownCode, "--out", filepath.Join(dir, "nope"),
		"--root", info.RootCAFile, "--p12-password-file", p12pw}, strings.NewReader(""), &out, &errb)
	cliLogs.Write(errb.Bytes())
	alice := info.BackofficeUsers[0]
	code := strings.TrimSpace(runCLI("admin", "--config", cfg, "sub", "ticket", alice.Name))
	s.add("enrollment code", code)
	pc := filepath.Join(dir, "alice-pc")
	runCLI("enroll", "--url", info.CAURL, "--code", code, "--out", pc, "--label", "alice pc", "--root", info.RootCAFile, "--p12-password-file", p12pw)
	keyPEM, err := os.ReadFile(filepath.Join(pc, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.addPEM("device private key", keyPEM)

	// Through the proxy: the app's login, a high-risk page with the device
	// certificate and the session cookie, the same without a certificate,
	// and with two session cookies.
	cert, err := tls.LoadX509KeyPair(filepath.Join(pc, "chain.pem"), filepath.Join(pc, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	device := webClient(t, info.RootCAFile, &cert)
	send(t, device, "POST", info.ProxyURL+"/login", url.Values{"username": {alice.Name}, "password": {alice.Password}}, nil)
	if p = send(t, device, "GET", info.ProxyURL+"/orders/sold", nil, nil); p.status != http.StatusOK {
		t.Fatalf("proxy /orders/sold with alice's device and session: %d", p.status)
	}
	proxyURL, _ := url.Parse(info.ProxyURL)
	var appCookie string
	for _, c := range device.Jar.Cookies(proxyURL) {
		s.add("app session cookie", c.Value)
		appCookie = c.Name + "=" + c.Value
	}
	if appCookie == "" {
		t.Fatal("no app session cookie")
	}
	noCert := webClient(t, info.RootCAFile, nil)
	send(t, noCert, "GET", info.ProxyURL+"/orders/sold", nil, http.Header{"Cookie": {appCookie}})
	send(t, device, "GET", info.ProxyURL+"/orders/sold", nil, http.Header{"Cookie": {appCookie + "; " + appCookie + "x"}})
	send(t, device, "GET", info.ProxyURL+"/orders/sold", nil, http.Header{"Authorization": {"Bearer " + strings.Repeat("tok", 20)}})
	s.add("bearer token", strings.Repeat("tok", 20))

	// Every portal cookie (sessions, pre-login, known browser).
	portalURL, _ := url.Parse(portal)
	for _, c := range append(owner.Jar.Cookies(portalURL), staff.Jar.Cookies(portalURL)...) {
		if c.Name != "dg_lang" {
			s.add("portal cookie "+c.Name, c.Value)
		}
	}
	for _, c := range noCert.Jar.Cookies(portalURL) {
		s.add("portal cookie "+c.Name, c.Value)
	}
	// The demo's key files: CA keys (PEM), seal and cookie keys (raw).
	filepath.WalkDir(filepath.Join(dir, "data"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".key") && !strings.HasSuffix(path, "key.pem") {
			return nil
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			s.addPEM("key file "+filepath.Base(path), data)
		} else if len(data) >= 16 {
			s.add("key file "+filepath.Base(path), string(data), hex.EncodeToString(data), base64.StdEncoding.EncodeToString(data))
		}
		return nil
	})

	// Stopped, the proxy has written its queued decisions: the audit log
	// holds them all, with no waiting for a batch.
	stop()
	auditJSON := runCLI("admin", "--config", cfg, "audit", info.Store, "--json")
	if !strings.Contains(auditJSON, `"proxy.allow"`) || !strings.Contains(auditJSON, `"proxy.deny"`) {
		t.Fatalf("the proxy's decisions are not in the audit log:\n%s", auditJSON)
	}
	if p := os.Getenv("DEVICEGATE_DUMP_LOG"); p != "" {
		os.WriteFile(p, []byte(demoLog.String()+cliLogs.String()), 0o600)
	}
	if !strings.Contains(demoLog.String(), "level=") {
		t.Fatalf("the demo logged nothing:\n%s", demoLog.String())
	}
	s.check(map[string]string{"demo log (debug)": demoLog.String(), "CLI stderr": cliLogs.String(), "audit log": auditJSON})
}
