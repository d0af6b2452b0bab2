package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

// testIssuer is the real in-process CA behind the portal's Issuer
// interface (cmd/devicegate has the production adapter; the CA may not
// import the portal, so the tests carry their own few lines).
type testIssuer struct{ a *ca.Authority }

func (t testIssuer) Issue(ctx context.Context, r enroll.IssueRequest) (enroll.Issued, error) {
	is, err := t.a.Issue(ctx, ca.IssueRequest{TenantID: r.TenantID, SubID: r.SubID, CSR: r.CSR, Label: r.Label, ClientIP: r.ClientIP, UA: r.UA})
	if err != nil {
		if e := ca.Explain(err); e.Status < 500 {
			return enroll.Issued{}, &e
		}
		return enroll.Issued{}, err
	}
	return enroll.Issued{Device: is.Device, Installed: is.Installed, Limit: is.Limit,
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Chain[0].Raw}))}, nil
}

func (t testIssuer) Renew(ctx context.Context, r enroll.RenewRequest) (enroll.Issued, error) {
	is, err := t.a.RenewForSession(ctx, ca.SessionRenewal{TenantID: r.TenantID, SubID: r.SubID, DeviceID: r.DeviceID, CSR: r.CSR, ClientIP: r.ClientIP, UA: r.UA})
	if err != nil {
		if e := ca.Explain(err); e.Status < 500 {
			return enroll.Issued{}, &e
		}
		return enroll.Issued{}, err
	}
	return enroll.Issued{Device: is.Device, Installed: is.Installed, Limit: is.Limit,
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Chain[0].Raw}))}, nil
}

func (t testIssuer) RevokeDevice(ctx context.Context, tenantID, deviceID string, a store.Actor) error {
	_, err := t.a.RevokeDevice(ctx, tenantID, deviceID, store.ReasonPrivilegeWithdrawn, a)
	return err
}

func (t testIssuer) RevokeSubAccount(ctx context.Context, tenantID, subID string, a store.Actor) error {
	_, err := t.a.RevokeSubAccount(ctx, tenantID, subID, store.ReasonPrivilegeWithdrawn, a)
	return err
}

func (t testIssuer) SetStatus(ctx context.Context, tenantID, subID string, s store.SubStatus, a store.Actor) error {
	_, _, err := t.a.SetStatus(ctx, tenantID, subID, s, a)
	return err
}

var cliActor = storetest.Actor

// env is a portal over a real SQLite store and a real CA, served over TLS.
type env struct {
	t      testing.TB
	ctx    context.Context
	st     store.Store
	tenant store.Tenant
	srv    *httptest.Server
	now    time.Time

	authority *ca.Authority
}

const ownerPassword = "owner-password-123"

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOver(t, sqlitetest.Open(t))
}

// newEnvOver is newEnv over a store the test opened itself.
func newEnvOver(t testing.TB, st store.Store) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := ca.Init(filepath.Join(dir, "ca"), ca.InitOptions{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	keys, err := ca.LoadKeys(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ctx, keys, st, ca.Options{TrustDomain: "test.local"})
	if err != nil {
		t.Fatal(err)
	}
	tn := storetest.Tenant(t, st, "shop")
	hash, _ := secrets.HashPassword(ownerPassword)
	if err := st.SetOwnerLogin(ctx, tn.ID, hash, nil, cliActor); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, st: st, tenant: tn, now: time.Now(), authority: authority}
	e.srv = e.portalNode()
	return e
}

// portalNode starts one more portal process over the env's store (the
// portal keeps no state of its own: a second node, or a restart).
func (e *env) portalNode() *httptest.Server {
	e.t.Helper()
	catalog, _ := config.DefaultCatalog()
	p, err := enroll.New(enroll.Options{Store: e.st, Issuer: testIssuer{e.authority}, Catalog: catalog,
		ProxyURL: "https://localhost:9443/", CookieKey: make([]byte, 32), Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return e.now }})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewTLSServer(peerAddr(p))
	e.t.Cleanup(srv.Close)
	return srv
}

// peerAddr lets a test browser come from another client address: the
// portal's client IP is the TCP peer, and every test connection is
// loopback.
func peerAddr(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip := r.Header.Get("X-Test-Peer"); ip != "" {
			r.RemoteAddr = net.JoinHostPort(ip, "1")
			r.Header.Del("X-Test-Peer")
		}
		h.ServeHTTP(w, r)
	})
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    testing.TB
	e    *env
	c    *http.Client
	last string // last page body
	base string // the portal node it talks to ("": the env's)
	ip   string // the client address it comes from ("": loopback)
}

// at sends the browser's next requests to another portal node (cookies
// are per host, so it keeps them) from client address ip.
func (b *browser) at(node *httptest.Server, ip string) *browser {
	b.base, b.ip = "", ip
	if node != nil {
		b.base = node.URL
	}
	return b
}

func (b *browser) url(path string) string {
	if b.base != "" {
		return b.base + path
	}
	return b.e.srv.URL + path
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: e.srv.Client().Transport, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: e.t, e: e, c: c}
}

func (b *browser) do(req *http.Request) (int, string, string) {
	b.t.Helper()
	if b.ip != "" {
		req.Header.Set("X-Test-Peer", b.ip)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.last = string(body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (b *browser) get(path string) (int, string, string) {
	req, _ := http.NewRequest("GET", b.url(path), nil)
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token of the last page's forms.
func (b *browser) csrf() string {
	m := csrfField.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("no CSRF token on the page:\n%s", b.last)
	}
	return m[1]
}

// post submits a form; the CSRF token of the last page is added unless
// the form has one ("" to send none).
func (b *browser) post(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf())
	}
	req, _ := http.NewRequest("POST", b.url(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func code(t testing.TB, secret string, at time.Time) string {
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var secretOnPage = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)

// ownerLogin logs the owner in; on the first login it binds the TOTP
// secret shown on the page and returns it.
func (b *browser) ownerLogin(secret string) string {
	b.t.Helper()
	b.get("/owner/login")
	if st, _, loc := b.post("/owner/login", url.Values{"store": {"shop"}, "password": {ownerPassword}}); st != http.StatusSeeOther || loc != "/owner/totp" {
		b.t.Fatalf("owner login: %d %s\n%s", st, loc, b.last)
	}
	b.get("/owner/totp")
	if secret == "" {
		m := secretOnPage.FindStringSubmatch(b.last)
		if m == nil {
			b.t.Fatalf("first owner login shows no TOTP secret:\n%s", b.last)
		}
		secret = m[1]
	}
	b.e.now = b.e.now.Add(30 * time.Second) // a fresh step for each login
	if st, _, loc := b.post("/owner/totp", url.Values{"code": {code(b.t, secret, b.e.now)}}); st != http.StatusSeeOther || loc != "/owner/" {
		b.t.Fatalf("owner TOTP: %d %s\n%s", st, loc, b.last)
	}
	return secret
}

// newSub creates a sub-account through the console and returns it.
func (b *browser) newSub(name, role, password string) store.SubAccount {
	b.t.Helper()
	b.get("/owner/")
	st, _, _ := b.post("/owner/subs", url.Values{"name": {name}, "role": {role}, "password": {password}})
	if st != http.StatusSeeOther {
		b.t.Fatalf("create sub-account: %d\n%s", st, b.last)
	}
	s, err := b.e.st.GetSubAccountByName(b.e.ctx, b.e.tenant.ID, name)
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// protect enables phone verification (returning the TOTP secret shown
// once) and certificate protection with n.
func (b *browser) protect(s store.SubAccount, n string) string {
	b.t.Helper()
	b.get("/owner/subs/" + s.ID)
	if st, _, _ := b.post("/owner/subs/"+s.ID+"/phone", url.Values{}); st != http.StatusOK {
		b.t.Fatalf("enable phone: %d", st)
	}
	m := secretOnPage.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatal("phone QR page shows no secret")
	}
	if st, _, _ := b.post("/owner/subs/"+s.ID+"/protection", url.Values{"devices": {n}}); st != http.StatusSeeOther {
		b.t.Fatalf("protect: %d\n%s", st, b.last)
	}
	return m[1]
}

func (b *browser) staffLogin(user, password, secret string) {
	b.t.Helper()
	b.get("/staff/login")
	st, _, loc := b.post("/staff/login", url.Values{"username": {user}, "password": {password}})
	if st != http.StatusSeeOther {
		b.t.Fatalf("staff login: %d\n%s", st, b.last)
	}
	if loc == "/staff/totp" {
		b.get("/staff/totp")
		b.e.now = b.e.now.Add(30 * time.Second)
		if st, _, loc = b.post("/staff/totp", url.Values{"code": {code(b.t, secret, b.e.now)}}); st != http.StatusSeeOther || loc != "/staff/" {
			b.t.Fatalf("staff TOTP: %d %s\n%s", st, loc, b.last)
		}
	}
}

// csrPEM is a P-256 CSR (as the browser's pkijs builds it).
func csrPEM(t testing.TB) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

var metaCSRF = regexp.MustCompile(`name="dg-csrf" content="([^"]+)"`)

// enroll posts a CSR as the enrollment page's script does.
func (b *browser) enroll(csr []byte, label string, withToken bool) (int, map[string]any) {
	b.t.Helper()
	b.get("/staff/enroll")
	m := metaCSRF.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("enroll page without CSRF meta:\n%s", b.last)
	}
	body, _ := json.Marshal(map[string]string{"csr": string(csr), "label": label})
	req, _ := http.NewRequest("POST", b.url("/staff/api/enroll"), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if withToken {
		req.Header.Set("X-CSRF-Token", m[1])
	}
	st, out, _ := b.do(req)
	var v map[string]any
	_ = json.Unmarshal([]byte(out), &v)
	return st, v
}

// The whole flow of seed 000 through the portal: the owner creates and
// protects a sub-account with N=2, staff log in with a TOTP code and
// enroll twice, the third is refused with the limit message, the owner
// sees Installed (2/2) and revokes.
func TestOwnerProtectsStaffEnrolls(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	ownerSecret := owner.ownerLogin("")
	sub := owner.newSub("小明", "customer-service", "staff-password-1")
	staffSecret := owner.protect(sub, "2")

	staff := e.browser()
	staff.staffLogin("shop:小明", "staff-password-1", staffSecret)
	for i, label := range []string{"front desk", "back office"} {
		st, v := staff.enroll(csrPEM(t), label, true)
		if st != http.StatusOK || v["installed"] != float64(i+1) || v["limit"] != float64(2) {
			t.Fatalf("enrollment %d: %d %v", i+1, st, v)
		}
		block, _ := pem.Decode([]byte(v["certificate"].(string)))
		if block == nil {
			t.Fatalf("enrollment %d: no certificate", i+1)
		}
	}
	st, v := staff.enroll(csrPEM(t), "third", true)
	errv, _ := v["error"].(map[string]any)
	if st != http.StatusForbidden || errv["message"] != ca.QuotaMessageEN || errv["message_zh"] != ca.QuotaMessageZH {
		t.Fatalf("third enrollment: %d %v", st, v)
	}

	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, "Installed (2/2)") || !strings.Contains(owner.last, "front desk") {
		t.Fatalf("owner page does not show Installed (2/2) with the devices:\n%s", owner.last)
	}
	devs, _ := e.st.ListDevices(e.ctx, e.tenant.ID, sub.ID)
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/devices/"+devs[0].ID+"/revoke", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", st, owner.last)
	}
	if d, _ := e.st.GetDevice(e.ctx, e.tenant.ID, devs[0].ID); d.Status == store.DeviceActive {
		t.Fatal("device still active after the owner revoked it")
	}
	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, "Installed (1/2)") {
		t.Fatal("owner page does not show Installed (1/2) after the revocation")
	}
	// The owner's second login asks for the code of the bound phone.
	again := e.browser()
	again.ownerLogin(ownerSecret)

	// Every step is in the operation records.
	owner.get("/owner/audit?target=" + url.QueryEscape("shop:小明"))
	for _, action := range []string{"sub.create", "sub.phone", "sub.protect", "device.issue", "device.revoke", "sub.login"} {
		if !strings.Contains(owner.last, action) {
			t.Errorf("records lack %s", action)
		}
	}
}

// The CSR the browser bundle builds (saved by enroll/web/test/roundtrip.mjs)
// passes the CA's strict parser: signature, key type and structure.
func TestBrowserBundleCSRParses(t *testing.T) {
	data, err := os.ReadFile("testdata/pkijs-csr.pem")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.ParseCSR(data, false)
	if err != nil {
		t.Fatalf("pkijs CSR refused: %v", err)
	}
	if csr.Subject.CommonName != "demo-store:小明" {
		t.Fatalf("CN %q", csr.Subject.CommonName)
	}
}
