package enroll_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/store"
)

// ownerConsole starts the owner-console listener over the env's store:
// the same portal, on a TLS listener that asks for a client certificate
// (naming the device intermediates) without requiring or judging it, as
// cmd/devicegate's portal.owner_listen does.
func (e *env) ownerConsole() *httptest.Server {
	e.t.Helper()
	catalog, _ := config.DefaultCatalog()
	srv := httptest.NewUnstartedServer(nil)
	p, err := enroll.New(enroll.Options{Store: e.st, Issuer: testIssuer{e.authority}, Catalog: catalog,
		ProxyURL: "https://localhost:9443/", CookieKey: make([]byte, 32), Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return e.now }, TrustDomain: "test.local", DeviceCAs: func() *x509.CertPool { return e.authority.Keys().DevicePool() },
		OwnerConsoleURL: "https://owner.example"})
	if err != nil {
		e.t.Fatal(err)
	}
	srv.Config.Handler = p
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, ClientCAs: e.authority.Keys().DevicePool()}
	srv.StartTLS()
	e.t.Cleanup(srv.Close)
	return srv
}

// certBrowser is a browser that presents cert on every TLS connection
// (nil: none), as a browser that holds the certificate does.
func (e *env) certBrowser(cert *tls.Certificate) *browser {
	b := e.browser()
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	jar, _ := cookiejar.New(nil)
	b.c = &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// keyAndCSR is a P-256 key and its CSR, as the enrollment page makes them.
func keyAndCSR(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// ownerEnroll posts a CSR as the owner enrollment page's script does.
func (b *browser) ownerEnroll(csr []byte, label string) (int, map[string]any) {
	b.t.Helper()
	b.get("/owner/certs/enroll")
	m := metaCSRF.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("owner enroll page without CSRF meta:\n%s", b.last)
	}
	body, _ := json.Marshal(map[string]string{"csr": string(csr), "label": label})
	req, _ := http.NewRequest("POST", b.url("/owner/api/enroll"), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", m[1])
	st, out, _ := b.do(req)
	var v map[string]any
	_ = json.Unmarshal([]byte(out), &v)
	return st, v
}

// tlsCert is the issued certificate with its key, as a browser holds it.
func tlsCert(t testing.TB, certPEM string, key *ecdsa.PrivateKey) *tls.Certificate {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		t.Fatalf("no certificate in %q", certPEM)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: leaf}
}

// enrolledOwnerCert enrolls one owner computer through the portal and
// returns its certificate and device id.
func (b *browser) enrolledOwnerCert(label string) (*tls.Certificate, string) {
	b.t.Helper()
	key, csr := keyAndCSR(b.t)
	st, v := b.ownerEnroll(csr, label)
	if st != http.StatusOK {
		b.t.Fatalf("owner enrollment %s: %d %v", label, st, v)
	}
	return tlsCert(b.t, v["certificate"].(string), key), v["device_id"].(string)
}

// setRequired posts the requirement form with a fresh code.
func (b *browser) setRequired(secret, to string) int {
	b.t.Helper()
	b.get("/owner/certs")
	b.e.now = b.e.now.Add(30 * time.Second)
	st, _, _ := b.post("/owner/certs/required", url.Values{"required": {to}, "code": {code(b.t, secret, b.e.now)}})
	return st
}

func (e *env) ownerCertRequired() bool {
	e.t.Helper()
	tn, err := e.st.GetTenant(e.ctx, e.tenant.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return tn.OwnerCertRequired
}

// TestOwnerEnrollsOwnComputers: the owner enrolls computers with the
// WebCrypto flow under the quota (N=1 by default, 1..5, never below the
// installed ones), sees them in the console and revokes one there.
func TestOwnerEnrollsOwnComputers(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	if st, body, _ := owner.get("/owner/certs"); st != http.StatusOK || !strings.Contains(body, "Installed (0/1)") {
		t.Fatalf("owner computers page before any: %d\n%s", st, body)
	}
	_, first := owner.enrolledOwnerCert("office pc")
	_, csr := keyAndCSR(t)
	st, v := owner.ownerEnroll(csr, "second")
	if errv, _ := v["error"].(map[string]any); st != http.StatusForbidden || errv["message"] != ca.QuotaMessageEN {
		t.Fatalf("second owner computer with N=1: %d %v", st, v)
	}
	for _, n := range []string{"0", "6", "x"} {
		owner.get("/owner/certs")
		if st, _, _ := owner.post("/owner/certs/limit", url.Values{"devices": {n}}); st != http.StatusBadRequest {
			t.Fatalf("N=%s: %d", n, st)
		}
	}
	owner.get("/owner/certs")
	if st, _, _ := owner.post("/owner/certs/limit", url.Values{"devices": {"2"}}); st != http.StatusSeeOther {
		t.Fatalf("N=2: %d\n%s", st, owner.last)
	}
	_, second := owner.enrolledOwnerCert("laptop")
	owner.get("/owner/certs")
	if !strings.Contains(owner.last, "Installed (2/2)") || !strings.Contains(owner.last, "office pc") || !strings.Contains(owner.last, "laptop") {
		t.Fatalf("owner computers page:\n%s", owner.last)
	}
	if st, _, _ := owner.post("/owner/certs/limit", url.Values{"devices": {"1"}}); st != http.StatusConflict {
		t.Fatalf("N below the installed computers: %d", st)
	}
	owner.get("/owner/certs")
	if st, _, _ := owner.post("/owner/certs/devices/"+second+"/revoke", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", st, owner.last)
	}
	if d, _ := e.st.GetDevice(e.ctx, e.tenant.ID, second); d.Status != store.DeviceRevoked {
		t.Fatalf("owner computer not revoked: %+v", d)
	}
	if d, _ := e.st.GetDevice(e.ctx, e.tenant.ID, first); d.Status != store.DeviceActive {
		t.Fatalf("the other owner computer changed: %+v", d)
	}
	// A staff device cannot be revoked through the owner's own page, and
	// the owner's own account is not a sub-account page.
	o, _ := e.st.OwnerAccount(e.ctx, e.tenant.ID)
	if st, _, _ := owner.get("/owner/subs/" + o.ID); st != http.StatusNotFound {
		t.Fatalf("owner account as a sub-account page: %d", st)
	}
	owner.get("/owner/")
	if strings.Contains(owner.last, o.ID) {
		t.Fatal("the owner account is listed among the sub-accounts")
	}
	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Action] = true
	}
	for _, a := range []string{"owner.account", "device.issue", "sub.protect", "device.revoke"} {
		if !seen[a] {
			t.Errorf("no %s in the records", a)
		}
	}
}

// TestOwnerCertRequiredGate: with the requirement on, every owner page and
// action needs a valid owner certificate of this store on the request,
// checked against the store each time; everything else is refused with
// its reason (zh/en page, JSON for the API) and audited.
func TestOwnerCertRequiredGate(t *testing.T) {
	e := newEnv(t)
	console := e.ownerConsole()

	// The owner enrolls two computers (N=2) from the plain portal.
	setup := e.browser()
	secret := setup.ownerLogin("")
	setup.get("/owner/certs")
	setup.post("/owner/certs/limit", url.Values{"devices": {"2"}})
	good, _ := setup.enrolledOwnerCert("office pc")
	revoked, revokedID := setup.enrolledOwnerCert("old laptop")

	// A staff device of this store, and another store's owner computer.
	sub := setup.newSub("小明", "customer-service", "staff-password-1")
	staffSecret := setup.protect(sub, "1")
	staff := e.browser()
	staff.staffLogin("shop:小明", "staff-password-1", staffSecret)
	key, csr := keyAndCSR(t)
	st, v := staff.enroll(csr, "desk", true)
	if st != http.StatusOK {
		t.Fatalf("staff enrollment: %d %v", st, v)
	}
	staffCert := tlsCert(t, v["certificate"].(string), key)
	other := storeWithOwner(t, e, "other")
	key, csr = keyAndCSR(t)
	is, err := e.authority.Issue(e.ctx, ca.IssueRequest{TenantID: other.TenantID, SubID: other.ID, CSR: csr, Label: "their pc"})
	if err != nil {
		t.Fatal(err)
	}
	otherCert := tlsCert(t, pemOfCert(is.Chain[0]), key)

	// Turning it on needs the certificate on this very request and a
	// fresh code: from the plain portal (no certificate) it is refused.
	if st := setup.setRequired(secret, "on"); st != http.StatusConflict || e.ownerCertRequired() {
		t.Fatalf("turned on without a certificate on the request: %d", st)
	}
	withCert := e.certBrowser(good).at(console, "")
	withCert.ownerLogin(secret)
	withCert.get("/owner/certs")
	if st, _, _ := withCert.post("/owner/certs/required", url.Values{"required": {"on"}, "code": {"000000"}}); st != http.StatusForbidden || e.ownerCertRequired() {
		t.Fatalf("turned on with a wrong code: %d", st)
	}
	if st := withCert.setRequired(secret, "on"); st != http.StatusSeeOther || !e.ownerCertRequired() {
		t.Fatalf("turn on with the certificate and a fresh code: %d\n%s", st, withCert.last)
	}
	withCert.get("/owner/certs")
	if !strings.Contains(withCert.last, "this computer") {
		t.Fatal("the console does not mark the computer in use")
	}
	setup.get("/owner/certs") // the plain portal's session is refused now
	if !strings.Contains(setup.last, "did not present one") {
		t.Fatalf("plain portal after turning on:\n%s", setup.last)
	}
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, revokedID, store.ReasonKeyCompromise, cliActor); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		cert   *tls.Certificate
		at     *httptest.Server // nil: the plain portal
		reason string           // "" allowed
	}{
		{"no certificate, plain portal", nil, nil, "owner_cert_missing"},
		{"no certificate, owner console", nil, console, "owner_cert_missing"},
		{"staff device certificate", staffCert, console, "owner_cert_other"},
		{"another store's owner certificate", otherCert, console, "owner_cert_other"},
		{"revoked owner certificate", revoked, console, "owner_cert_revoked"},
		{"forged owner certificate (another CA, same identity and serial)", forgedCopy(t, good), console, "owner_cert_other"},
		{"valid owner certificate", good, console, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkOwnerGate(t, e, e.certBrowser(tc.cert).at(tc.at, ""), secret, sub, tc.at != nil, tc.reason)
		})
	}

	// Turning it off needs a fresh code too; then the plain portal works.
	if st := withCert.setRequired(secret, "off"); st != http.StatusSeeOther || e.ownerCertRequired() {
		t.Fatalf("turn off: %d\n%s", st, withCert.last)
	}
	if st, _, _ := setup.get("/owner/"); st != http.StatusOK {
		t.Fatalf("plain portal after turning off: %d", st)
	}
	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "owner.cert_required"})
	if len(evs) != 2 || evs[0].Detail["to"] != "true" || evs[1].Detail["to"] != "false" || evs[0].Actor.Kind != "owner" {
		t.Fatalf("requirement changes in the records: %+v", evs)
	}

	// An owner certificate past its end is refused by the portal's own
	// clock (a keep-alive connection may outlive it).
	if st := withCert.setRequired(secret, "on"); st != http.StatusSeeOther {
		t.Fatalf("turn on again: %d", st)
	}
	e.now = e.now.Add(366 * 24 * time.Hour)
	t.Run("expired owner certificate", func(t *testing.T) {
		checkOwnerGate(t, e, e.certBrowser(good).at(console, ""), secret, sub, true, "owner_cert_expired")
	})
}

// refusalTexts are a part of each refusal's page text, in en and zh.
var refusalTexts = map[string][2]string{
	"owner_cert_missing": {"did not present one", "没有提供证书"},
	"owner_cert_other":   {"not a main account certificate of this store", "不是本店铺主账号的数字证书"},
	"owner_cert_revoked": {"was revoked", "已被吊销"},
	"owner_cert_expired": {"has expired", "已过期"},
}

// checkOwnerGate logs b in as the owner and tries owner pages, an action
// and the enrollment API: all pass (reason "") or all are refused with
// reason, in both languages, audited.
func checkOwnerGate(t *testing.T, e *env, b *browser, secret string, sub store.SubAccount, console bool, reason string) {
	t.Helper()
	b.ownerLogin(secret) // login itself is not an owner page
	before, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "owner.cert_refused"})
	for _, path := range []string{"/owner/", "/owner/subs/" + sub.ID, "/owner/positions", "/owner/audit", "/owner/certs", "/owner/certs/enroll"} {
		st, body, _ := b.get(path)
		switch {
		case reason == "" && st != http.StatusOK:
			t.Fatalf("GET %s: %d\n%s", path, st, body)
		case reason != "" && (st != http.StatusForbidden || !strings.Contains(body, refusalTexts[reason][0])):
			t.Fatalf("GET %s: %d, want 403 %s\n%s", path, st, reason, body)
		case reason != "" && console && !strings.Contains(body, "https://owner.example"):
			t.Fatalf("GET %s: the refusal does not name the owner console\n%s", path, body)
		}
	}
	if reason != "" {
		b.get("/lang?to=zh&back=/")
		if _, body, _ := b.get("/owner/"); !strings.Contains(body, refusalTexts[reason][1]) {
			t.Fatalf("zh refusal page:\n%s", body)
		}
	}
	tok := pageCSRF(t, b)
	st, _, _ := b.post("/owner/subs/"+sub.ID+"/status", url.Values{"csrf": {tok}, "action": {"freeze"}})
	s, _ := e.st.GetSubAccount(e.ctx, e.tenant.ID, sub.ID)
	if reason != "" && (st != http.StatusForbidden || s.Status != store.StatusActive) {
		t.Fatalf("freeze without a valid owner certificate: %d, status %s", st, s.Status)
	}
	if reason == "" {
		if st != http.StatusSeeOther || s.Status != store.StatusFrozen {
			t.Fatalf("freeze with the owner certificate: %d, status %s", st, s.Status)
		}
		if _, _, err := e.st.SetStatus(e.ctx, e.tenant.ID, sub.ID, store.StatusActive, cliActor); err != nil {
			t.Fatal(err)
		}
	}
	// The page script's API answers in JSON.
	body, _ := json.Marshal(map[string]string{"csr": string(csrPEM(t)), "label": "x"})
	req, _ := http.NewRequest("POST", b.url("/owner/api/enroll"), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", tok)
	st, out, _ := b.do(req)
	if reason != "" && (st != http.StatusForbidden || !strings.Contains(out, `"code":"`+reason+`"`)) {
		t.Fatalf("owner enroll API: %d %s", st, out)
	}
	after, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "owner.cert_refused"})
	if reason != "" {
		if len(after) <= len(before) || after[len(after)-1].Detail["reason"] != reason || after[len(after)-1].Outcome != "denied" {
			t.Fatalf("refusals not audited with their reason: %d -> %d", len(before), len(after))
		}
	} else if len(after) != len(before) {
		t.Fatal("an allowed request was audited as refused")
	}
}

// storeWithOwner is another store with its owner account.
func storeWithOwner(t *testing.T, e *env, name string) store.SubAccount {
	t.Helper()
	tn, err := e.st.CreateTenant(e.ctx, store.NewTenant{Name: name}, cliActor)
	if err != nil {
		t.Fatal(err)
	}
	o, err := e.st.EnsureOwnerAccount(e.ctx, tn.ID, cliActor)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func pemOfCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// pageCSRF is the session's CSRF token on the last page (a refusal page
// has it too, in the layout's logout form).
func pageCSRF(t *testing.T, b *browser) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(b.last)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", b.last)
	}
	return m[1]
}

// TestOwnerCertRequirementCodeLockout: the requirement's code is the
// owner's TOTP under the login's lockout: after 5 wrong codes even the
// right one is refused for the window, and nothing changed.
func TestOwnerCertRequirementCodeLockout(t *testing.T) {
	e := newEnv(t)
	console := e.ownerConsole()
	setup := e.browser()
	secret := setup.ownerLogin("")
	good, _ := setup.enrolledOwnerCert("office pc")
	b := e.certBrowser(good).at(console, "")
	b.ownerLogin(secret)
	for i := 0; i < 5; i++ {
		b.get("/owner/certs")
		if st, _, _ := b.post("/owner/certs/required", url.Values{"required": {"on"}, "code": {"000000"}}); st != http.StatusForbidden {
			t.Fatalf("wrong code %d: %d", i+1, st)
		}
	}
	if st := b.setRequired(secret, "on"); st != http.StatusTooManyRequests || e.ownerCertRequired() {
		t.Fatalf("right code after 5 wrong ones: %d, required %v", st, e.ownerCertRequired())
	}
	e.now = e.now.Add(16 * time.Minute)
	if st := b.setRequired(secret, "on"); st != http.StatusSeeOther || !e.ownerCertRequired() {
		t.Fatalf("right code after the lock: %d", st)
	}
}

// forgedCopy is c's identity (URI, name, serial, dates, usage) on a new key,
// signed by a CA of the attacker's own.
func forgedCopy(t *testing.T, c *tls.Certificate) *tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not our CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: c.Leaf.NotBefore, NotAfter: c.Leaf.NotAfter}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: c.Leaf.SerialNumber, Subject: c.Leaf.Subject, URIs: c.Leaf.URIs,
		NotBefore: c.Leaf.NotBefore, NotAfter: c.Leaf.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf}
}
