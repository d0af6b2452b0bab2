package enroll_test

import (
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// Every state-changing request without the right CSRF token is refused
// and changes nothing; the same request with the token passes.
func TestPostWithoutCSRFChangesNothing(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub("alice", "operations", "staff-password-1")
	owner.get("/owner/subs/" + sub.ID)
	good := owner.csrf()
	tests := []struct {
		name, path string
		form       url.Values
	}{
		{"create without token", "/owner/subs", url.Values{"csrf": {""}, "name": {"mallory"}, "role": {"other"}, "password": {"staff-password-1"}}},
		{"create with a forged token", "/owner/subs", url.Values{"csrf": {"forged"}, "name": {"mallory"}, "role": {"other"}, "password": {"staff-password-1"}}},
		{"phone without token", "/owner/subs/" + sub.ID + "/phone", url.Values{"csrf": {""}}},
		{"depart without token", "/owner/subs/" + sub.ID + "/status", url.Values{"csrf": {""}, "action": {"depart"}}},
		{"logout without token", "/logout", url.Values{"csrf": {""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if st, _, _ := owner.post(tc.path, tc.form); st != http.StatusForbidden {
				t.Fatalf("status %d, want 403", st)
			}
		})
	}
	if _, err := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, "mallory"); err == nil {
		t.Fatal("a sub-account was created without a CSRF token")
	}
	if s, _ := e.st.GetSubAccount(e.ctx, e.tenant.ID, sub.ID); s.PhoneEnabled || s.Status != store.StatusActive {
		t.Fatalf("sub-account changed without a CSRF token: %+v", s)
	}
	// A cross-site POST (foreign Origin) is refused even with the token.
	req, _ := http.NewRequest("POST", e.srv.URL+"/owner/subs/"+sub.ID+"/phone", strings.NewReader("csrf="+url.QueryEscape(good)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if st, _, _ := owner.do(req); st != http.StatusForbidden {
		t.Fatalf("cross-origin POST: %d", st)
	}
	// Legitimate: the same change with the page's token.
	owner.get("/owner/subs/" + sub.ID)
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/phone", url.Values{}); st != http.StatusOK {
		t.Fatalf("phone with token: %d", st)
	}
	// The enrollment API wants the header token too.
	staffSecret := strings.TrimSpace(secretOnPage.FindStringSubmatch(owner.last)[1])
	owner.post("/owner/subs/"+sub.ID+"/protection", url.Values{"devices": {"1"}})
	staff := e.browser()
	staff.staffLogin("shop:alice", "staff-password-1", staffSecret)
	if st, _ := staff.enroll(csrPEM(t), "pc", false); st != http.StatusForbidden {
		t.Fatalf("enroll without X-CSRF-Token: %d", st)
	}
	if n, _ := e.st.CountActiveDevices(e.ctx, e.tenant.ID, sub.ID, time.Now()); n != 0 {
		t.Fatalf("%d devices after a refused enrollment", n)
	}
	if st, _ := staff.enroll(csrPEM(t), "pc", true); st != http.StatusOK {
		t.Fatalf("enroll with token: %d", st)
	}
}

// Login forms need their double-submit token too.
func TestLoginWithoutTokenRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/owner/login")
	if st, _, _ := b.post("/owner/login", url.Values{"csrf": {"nope"}, "store": {"shop"}, "password": {ownerPassword}}); st != http.StatusForbidden {
		t.Fatalf("owner login with a wrong token: %d", st)
	}
}

// Wrong TOTP codes lock the account out (even the right code is refused
// then); TOTP codes work once.
func TestTOTPLockoutAndSingleUse(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	secret := owner.ownerLogin("")
	sub := owner.newSub("bob", "operations", "staff-password-1")
	staffSecret := owner.protect(sub, "1")

	staff := e.browser()
	staff.get("/staff/login")
	staff.post("/staff/login", url.Values{"username": {"shop:bob"}, "password": {"staff-password-1"}})
	staff.get("/staff/totp")
	for i := range 5 {
		if st, _, _ := staff.post("/staff/totp", url.Values{"code": {"000000"}}); st != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i, st)
		}
	}
	e.now = e.now.Add(30 * time.Second)
	if st, _, _ := staff.post("/staff/totp", url.Values{"code": {code(t, staffSecret, e.now)}}); st != http.StatusTooManyRequests {
		t.Fatalf("right code while locked out: %d, want 429", st)
	}
	if !strings.Contains(staff.last, "Too many failed attempts") {
		t.Fatal("no lockout message")
	}

	// Single use: the owner's code of one step works once.
	a, b := e.browser(), e.browser()
	for _, br := range []*browser{a, b} {
		br.get("/owner/login")
		br.post("/owner/login", url.Values{"store": {"shop"}, "password": {ownerPassword}})
		br.get("/owner/totp")
	}
	e.now = e.now.Add(30 * time.Second)
	c := code(t, secret, e.now)
	if st, _, _ := a.post("/owner/totp", url.Values{"code": {c}}); st != http.StatusSeeOther {
		t.Fatalf("first use of the code: %d", st)
	}
	if st, _, _ := b.post("/owner/totp", url.Values{"code": {c}}); st != http.StatusUnauthorized || !strings.Contains(b.last, "already used") {
		t.Fatalf("second use of the code: %d", st)
	}
}

// Wrong passwords lock this client (here: its address) out of the account
// after five tries; the message does not say whether the account exists.
// lockout_test.go shows that other clients of the account stay in.
func TestPasswordLockout(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/owner/login")
	for i := range 5 {
		if st, _, _ := b.post("/owner/login", url.Values{"store": {"shop"}, "password": {"wrong-password"}}); st != http.StatusUnauthorized {
			t.Fatalf("try %d: %d", i, st)
		}
	}
	if st, _, _ := b.post("/owner/login", url.Values{"store": {"shop"}, "password": {ownerPassword}}); st != http.StatusTooManyRequests {
		t.Fatalf("right password while locked: %d", st)
	}
	// The lock is in the store: another portal node (or a restart) keeps it.
	other := *e
	other.srv = e.portalNode()
	b2 := (&other).browser()
	b2.get("/owner/login")
	if st, _, _ := b2.post("/owner/login", url.Values{"store": {"shop"}, "password": {ownerPassword}}); st != http.StatusTooManyRequests {
		t.Fatalf("right password on another node while locked: %d", st)
	}
	b.get("/owner/login")
	_, unknown, _ := b.post("/owner/login", url.Values{"store": {"no-such-store"}, "password": {"x"}})
	if !strings.Contains(unknown, "Wrong account or password") {
		t.Fatal("unknown store answered differently")
	}
}

// Names and labels are data: HTML in them is shown, never run.
func TestXSSPayloadsRenderEscaped(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub(`<script>alert(1)</script>`, "operations", "staff-password-1")
	staffSecret := owner.protect(sub, "2")
	staff := e.browser()
	staff.staffLogin("shop:<script>alert(1)</script>", "staff-password-1", staffSecret)
	if st, _ := staff.enroll(csrPEM(t), `<img src=x onerror=alert(2)>`, true); st != http.StatusOK {
		t.Fatalf("enroll: %d", st)
	}
	for _, page := range []struct {
		b    *browser
		path string
	}{{owner, "/owner/"}, {owner, "/owner/subs/" + sub.ID}, {owner, "/owner/audit"}, {staff, "/staff/"}} {
		page.b.get(page.path)
		if strings.Contains(page.b.last, "<script>alert(1)") || strings.Contains(page.b.last, "<img src=x") {
			t.Fatalf("%s renders a payload unescaped", page.path)
		}
		if !strings.Contains(page.b.last, "&lt;script&gt;alert(1)") && !strings.Contains(page.b.last, "&lt;img src=x") {
			t.Fatalf("%s does not show the escaped name or label", page.path)
		}
	}
}

// Tampered or foreign CSRs, garbage and oversized bodies are refused with
// a clear error and take no quota slot.
func TestEnrollBadInput(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub("carol", "operations", "staff-password-1")
	staffSecret := owner.protect(sub, "1")
	staff := e.browser()
	staff.staffLogin("shop:carol", "staff-password-1", staffSecret)

	good := csrPEM(t)
	block, _ := pem.Decode(good)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	other, _ := pem.Decode(csrPEM(t))
	// The public key of one CSR with the signature of another: "a CSR for
	// another key".
	swapped := append(append([]byte(nil), block.Bytes[:len(block.Bytes)-72]...), other.Bytes[len(other.Bytes)-72:]...)
	tests := []struct {
		name   string
		csr    []byte
		status int
	}{
		{"tampered signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), http.StatusBadRequest},
		{"signature of another key", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: swapped}), http.StatusBadRequest},
		{"not a CSR", []byte("hello"), http.StatusBadRequest},
		{"oversized", []byte(strings.Repeat("A", 40<<10)), http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, v := staff.enroll(tc.csr, "pc", true)
			if st != tc.status || v["error"] == nil {
				t.Fatalf("%d %v, want %d with an error", st, v, tc.status)
			}
		})
	}
	if n, _ := e.st.CountActiveDevices(e.ctx, e.tenant.ID, sub.ID, time.Now()); n != 0 {
		t.Fatalf("bad requests took %d quota slots", n)
	}
	st, first := staff.enroll(good, "pc", true)
	if st != http.StatusOK {
		t.Fatalf("the good CSR after the bad ones: %d", st)
	}
	// The same request again (a replay, or a double submit, or a retry
	// after a lost answer) gets no second certificate and takes no second
	// slot, also with a slot free: it gets the same certificate again.
	if _, err := e.st.SetProtection(e.ctx, e.tenant.ID, sub.ID, store.Protection{Enabled: true, MaxDevices: 2}, store.Actor{Kind: "owner", Name: "test"}); err != nil {
		t.Fatal(err)
	}
	if st, v := staff.enroll(good, "pc", true); st != http.StatusOK || v["serial"] != first["serial"] || v["certificate"] != first["certificate"] {
		t.Fatalf("replayed enrollment: %d %v", st, v)
	}
	if n, _ := e.st.CountActiveDevices(e.ctx, e.tenant.ID, sub.ID, time.Now()); n != 1 {
		t.Fatalf("after a replay %d devices, want 1", n)
	}
}

func TestHeadersCookiesAndRotation(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp, err := b.c.Get(e.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("no nosniff")
	}
	b.get("/owner/login")
	form := url.Values{"store": {"shop"}, "password": {ownerPassword}, "csrf": {b.csrf()}}
	req, _ := http.NewRequest("POST", e.srv.URL+"/owner/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var first string
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-dg_session" {
			first = c.Value
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
				t.Fatalf("session cookie attributes: %+v", c)
			}
		}
	}
	if first == "" {
		t.Fatal("no session cookie after the password step")
	}
	b.get("/owner/totp")
	secret := secretOnPage.FindStringSubmatch(b.last)[1]
	e.now = e.now.Add(30 * time.Second)
	form = url.Values{"code": {code(t, secret, e.now)}, "csrf": {b.csrf()}}
	req, _ = http.NewRequest("POST", e.srv.URL+"/owner/totp", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-dg_session" && (c.Value == first || c.Value == "") {
			t.Fatal("session id not rotated at login")
		}
	}
	// The pre-login session id is dead.
	old := e.browser()
	u, _ := url.Parse(e.srv.URL)
	old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-dg_session", Value: first}})
	if st, _, loc := old.get("/owner/"); st != http.StatusSeeOther || loc != "/owner/login" {
		t.Fatalf("old session id still works: %d %s", st, loc)
	}
}

// The language switch sends the browser back to a page of the portal and
// nowhere else: every attack falls back to "/", resolved against the
// portal it stays on the portal; real pages come back unchanged.
func TestNoOpenRedirect(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	base, _ := url.Parse(e.srv.URL + "/lang")
	tests := []struct{ rawBack, want string }{
		// raw query values, exactly as a link would carry them
		{"/./%5Cevil.com", "/"}, // the finding: answered Location: /\evil.com
		{"/%5Cevil.com", "/"},
		{"%5C%5Cevil.com", "/"},
		{"%5C/evil.com", "/"},
		{"/%255Cevil.com", "/"},
		{"//evil.com", "/"},
		{"%2F%2Fevil.com", "/"},
		{"/%252F/evil.com", "/"},
		{"/.//evil.com", "/"},
		{"/%2e%2e//evil.com", "/"},
		{"/%09/evil.com", "/"},
		{"%09//evil.com", "/"},
		{"/%0a/evil.com", "/"},
		{"/%0d%0aSet-Cookie:x=1", "/"},
		{"%20//evil.com", "/"},
		{"https://evil.example/", "/"},
		{"https:%2F%2Fevil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"http:/evil.example/path", "/"},
		{"", "/"},
		{"/owner/", "/owner/"},
		{"/owner/login", "/owner/login"},
		{"%2Fstaff%2Flogin%3Fnext%3Dx", "/staff/login?next=x"},
	}
	for _, tc := range tests {
		t.Run(tc.rawBack, func(t *testing.T) {
			st, _, loc := b.get("/lang?to=zh&back=" + tc.rawBack)
			if st != http.StatusSeeOther || loc != tc.want {
				t.Fatalf("back=%s: %d Location %q, want %q", tc.rawBack, st, loc, tc.want)
			}
			u, err := url.Parse(loc)
			if err != nil || base.ResolveReference(u).Host != base.Host {
				t.Fatalf("back=%s: Location %q leaves the portal", tc.rawBack, loc)
			}
		})
	}
}

// One store's owner never reaches another store's sub-accounts, and staff
// only revoke their own devices.
func TestIsolation(t *testing.T) {
	e := newEnv(t)
	other := storetest.Tenant(t, e.st, "other")
	foreign := storetest.Sub(t, e.st, store.NewSubAccount{TenantID: other.ID, Name: "eve"})
	owner := e.browser()
	owner.ownerLogin("")
	if st, _, _ := owner.get("/owner/subs/" + foreign.ID); st != http.StatusNotFound {
		t.Fatalf("another store's sub-account: %d", st)
	}
	owner.get("/owner/")
	if st, _, _ := owner.post("/owner/subs/"+foreign.ID+"/status", url.Values{"action": {"depart"}}); st != http.StatusNotFound {
		t.Fatalf("depart another store's sub-account: %d", st)
	}
	a := owner.newSub("alice", "operations", "staff-password-1")
	b := owner.newSub("bob", "operations", "staff-password-1")
	sa, sb := owner.protect(a, "1"), owner.protect(b, "1")
	alice, bob := e.browser(), e.browser()
	alice.staffLogin("shop:alice", "staff-password-1", sa)
	bob.staffLogin("shop:bob", "staff-password-1", sb)
	_, v := alice.enroll(csrPEM(t), "alice pc", true)
	dev := v["device_id"].(string)
	bob.get("/staff/")
	if st, _, _ := bob.post("/staff/devices/"+dev+"/revoke", url.Values{}); st != http.StatusNotFound {
		t.Fatalf("bob revoking alice's device: %d", st)
	}
	alice.get("/staff/")
	if st, _, _ := alice.post("/staff/devices/"+dev+"/revoke", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("alice revoking her own device: %d", st)
	}
}

func TestLanguages(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	req, _ := http.NewRequest("GET", e.srv.URL+"/owner/login", nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")
	if _, body, _ := b.do(req); !strings.Contains(body, "主账号登录") || !strings.Contains(body, `lang="zh-CN"`) {
		t.Fatal("zh-CN not chosen from Accept-Language")
	}
	b.get("/lang?to=en&back=/owner/login")
	req, _ = http.NewRequest("GET", e.srv.URL+"/owner/login", nil)
	req.Header.Set("Accept-Language", "zh-CN")
	if _, body, _ := b.do(req); !strings.Contains(body, "Main account login") {
		t.Fatal("the language switch does not win over Accept-Language")
	}
}

func TestRecordsCSVExport(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	owner.newSub("csv-test", "operations", "staff-password-1")
	st, body, _ := owner.get("/owner/audit.csv?target=shop:csv-test")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if st != http.StatusOK || !strings.HasPrefix(body, "seq,time,actor_kind") || len(lines) != 3 ||
		!strings.Contains(lines[1], "verify.required,shop:csv-test") || !strings.Contains(lines[2], "sub.create,shop:csv-test") {
		t.Fatalf("CSV: %d %q", st, body)
	}
}
