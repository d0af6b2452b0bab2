package enroll_test

import (
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/routetable"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// isoFixture is two stores on one portal: A ("shop", the env's) whose
// owner and staff are logged in, and B ("other") with a protected
// sub-account and an enrolled device. Every case acts as A with B's ids.
type isoFixture struct {
	e            *env
	owner, staff *browser
	aSub         store.SubAccount
	aDev         string
	b            store.Tenant
	bSub         store.SubAccount
	bDev         store.Device
	bOwnerDev    store.Device // one of B's owner's own computers
}

const (
	isoStaffPassword = "staff-password-a1"
	isoBPassword     = "staff-password-b1"
	isoBSubName      = "bee-only-in-b"
)

func newIsoFixture(t *testing.T) *isoFixture {
	e := newEnv(t)
	x := &isoFixture{e: e, owner: e.browser(), staff: e.browser()}
	x.owner.ownerLogin("")
	x.aSub = x.owner.newSub("a1", "customer-service", isoStaffPassword)
	secret := x.owner.protect(x.aSub, "3")
	x.staff.staffLogin("shop:a1", isoStaffPassword, secret)
	if st, v := x.staff.enroll(csrPEM(t), "a1 pc", true); st != http.StatusOK {
		t.Fatalf("A's enrollment: %d %v", st, v)
	} else {
		x.aDev = v["device_id"].(string)
	}

	x.b = storetest.Tenant(t, e.st, "other")
	hash, _ := secrets.HashPassword(isoBPassword)
	x.bSub = storetest.Protect(t, e.st, storetest.Sub(t, e.st, store.NewSubAccount{TenantID: x.b.ID, Name: isoBSubName, PasswordHash: hash}), 2)
	is, err := e.authority.Issue(e.ctx, ca.IssueRequest{TenantID: x.b.ID, SubID: x.bSub.ID, CSR: csrPEM(t), Label: "b pc"})
	if err != nil {
		t.Fatal(err)
	}
	x.bDev = is.Device
	bOwner, err := e.st.EnsureOwnerAccount(e.ctx, x.b.ID, cliActor)
	if err != nil {
		t.Fatal(err)
	}
	if is, err = e.authority.Issue(e.ctx, ca.IssueRequest{TenantID: x.b.ID, SubID: bOwner.ID, CSR: csrPEM(t), Label: "b owner pc"}); err != nil {
		t.Fatal(err)
	}
	x.bOwnerDev = is.Device
	return x
}

// bState is what B has: its sub-accounts and devices (state), and its
// audit chain. A refused attempt changes neither.
func (x *isoFixture) bState(t *testing.T) (state, audit string) {
	t.Helper()
	subs, err := x.e.st.ListSubAccounts(x.e.ctx, x.b.ID, store.SubAccountFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var devs []store.Device
	for _, s := range subs {
		d, err := x.e.st.ListDevices(x.e.ctx, x.b.ID, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d...)
	}
	evs, err := x.e.st.ListAudit(x.e.ctx, x.b.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := json.Marshal([]any{subs, devs})
	a, _ := json.Marshal(evs)
	return string(s), string(a)
}

// denials returns A's audit events of refused cross-store ids.
func (x *isoFixture) denials(t *testing.T) []store.AuditEvent {
	t.Helper()
	evs, err := x.e.st.ListAudit(x.e.ctx, x.e.tenant.ID, store.AuditFilter{Action: "denied.cross_tenant"})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// ownerToken and staffToken are the sessions' CSRF tokens, so a request
// is refused for its ids and not for a missing token.
func (x *isoFixture) ownerToken() string {
	x.owner.get("/owner/")
	return x.owner.csrf()
}

func (x *isoFixture) staffToken(t *testing.T) string {
	x.staff.get("/staff/enroll")
	m := metaCSRF.FindStringSubmatch(x.staff.last)
	if m == nil {
		t.Fatalf("staff enroll page without CSRF token:\n%s", x.staff.last)
	}
	return m[1]
}

// refusedAndAudited checks one attempt with B's id: 404 (or 403), and a
// denied.cross_tenant event in A's chain naming the id and the route.
func (x *isoFixture) refusedAndAudited(t *testing.T, pattern, id string, attempt func() int) {
	t.Helper()
	before := len(x.denials(t))
	if st := attempt(); st != http.StatusNotFound && st != http.StatusForbidden {
		t.Fatalf("%s with B's id %s: %d, want 404 or 403\n%s", pattern, id, st, x.owner.last+x.staff.last)
	}
	evs := x.denials(t)
	if len(evs) != before+1 {
		t.Fatalf("%s with B's id %s: %d new denied.cross_tenant events in A's log, want 1", pattern, id, len(evs)-before)
	}
	ev := evs[len(evs)-1]
	if ev.Target != id || ev.Detail["route"] != pattern || ev.Outcome != "denied" {
		t.Fatalf("%s: audit event %+v", pattern, ev.AuditEntry)
	}
}

// isoCase is what the matrix does for one route: either attempts with B's
// ids (run), or why the route takes no ids of a store (exempt).
type isoCase struct {
	exempt string
	// run makes the attempts; login routes may add to B's audit chain (a
	// failed login of B's account is B's event), so they set bAuditMoves.
	run         func(t *testing.T, x *isoFixture, pattern string)
	bAuditMoves bool
}

func portalIsolationCases() map[string]isoCase {
	ownerPost := func(path func(x *isoFixture) string, id func(x *isoFixture) string, form url.Values) isoCase {
		return isoCase{run: func(t *testing.T, x *isoFixture, pattern string) {
			tok := x.ownerToken()
			x.refusedAndAudited(t, pattern, id(x), func() int {
				f := url.Values{"csrf": {tok}}
				for k, v := range form {
					f[k] = v
				}
				st, _, _ := x.owner.post(path(x), f)
				return st
			})
		}}
	}
	bSubID := func(x *isoFixture) string { return x.bSub.ID }
	bDevID := func(x *isoFixture) string { return x.bDev.ID }
	subPath := func(suffix string) func(x *isoFixture) string {
		return func(x *isoFixture) string { return "/owner/subs/" + x.bSub.ID + suffix }
	}
	noLeak := func(t *testing.T, x *isoFixture, where, body string) {
		t.Helper()
		for _, s := range []string{x.bSub.ID, x.bDev.ID, x.bDev.Serial, x.b.ID, x.bOwnerDev.ID, x.bOwnerDev.Serial} {
			if strings.Contains(body, s) {
				t.Fatalf("%s shows B's %q:\n%s", where, s, body)
			}
		}
	}
	const public = "public page: no store data, no ids"
	const verifyLink = "takes a link token, not ids: only the logged-in sub-account's own link is served, any other answers account mismatch (TestVerifyAccountMismatch)"
	const credentials = "login step of a session bound to the store named at the password step (see POST login cases)"
	return map[string]isoCase{
		"GET /{$}":          {exempt: public},
		"GET /lang":         {exempt: public},
		"GET /static/":      {exempt: "embedded static assets"},
		"POST /logout":      {exempt: "ends the caller's own session; takes no ids"},
		"GET /owner/login":  {exempt: public},
		"GET /owner/totp":   {exempt: credentials},
		"POST /owner/totp":  {exempt: credentials},
		"GET /staff/login":  {exempt: public},
		"GET /staff/totp":   {exempt: credentials},
		"POST /staff/totp":  {exempt: credentials},
		"GET /staff/{$}":    {exempt: "own identity only: the session's sub-account"},
		"GET /staff/enroll": {exempt: "own identity only: the session's sub-account"},

		// A's owner password does not open B's console; A's staff password
		// does not open B's sub-account (the store is part of the account).
		"POST /owner/login": {bAuditMoves: true, run: func(t *testing.T, x *isoFixture, _ string) {
			b := x.e.browser()
			b.get("/owner/login")
			if st, _, loc := b.post("/owner/login", url.Values{"store": {"other"}, "password": {ownerPassword}}); st == http.StatusSeeOther && loc == "/owner/totp" {
				t.Fatal("A's owner password passed the password step of store B")
			}
		}},
		"POST /staff/login": {bAuditMoves: true, run: func(t *testing.T, x *isoFixture, _ string) {
			b := x.e.browser()
			b.get("/staff/login")
			if st, _, _ := b.post("/staff/login", url.Values{"username": {"other:" + isoBSubName}, "password": {isoStaffPassword}}); st == http.StatusSeeOther {
				t.Fatal("A's staff password logged in to B's sub-account")
			}
		}},

		"GET /owner/{$}": {run: func(t *testing.T, x *isoFixture, _ string) {
			for _, q := range []string{isoBSubName, x.bSub.ID} {
				st, body, _ := x.owner.get("/owner/?q=" + url.QueryEscape(q))
				if st != http.StatusOK {
					t.Fatalf("search %q: %d", q, st)
				}
				noLeak(t, x, "A's sub-account list", strings.ReplaceAll(body, q, ""))
			}
		}},
		// Creating takes no id: the store is the session's, whatever the
		// form adds. A name B uses is free in A.
		"POST /owner/subs": {run: func(t *testing.T, x *isoFixture, _ string) {
			tok := x.ownerToken()
			st, _, _ := x.owner.post("/owner/subs", url.Values{"csrf": {tok}, "name": {isoBSubName}, "role": {"finance"},
				"password": {"another-password-1"}, "store": {"other"}, "tenant_id": {x.b.ID}})
			if st != http.StatusSeeOther {
				t.Fatalf("create %s in A: %d\n%s", isoBSubName, st, x.owner.last)
			}
			s, err := x.e.st.GetSubAccountByName(x.e.ctx, x.e.tenant.ID, isoBSubName)
			if err != nil || s.TenantID != x.e.tenant.ID || s.ID == x.bSub.ID {
				t.Fatalf("created %+v, %v", s, err)
			}
		}},
		"GET /owner/subs/{id}": {run: func(t *testing.T, x *isoFixture, pattern string) {
			x.refusedAndAudited(t, pattern, x.bSub.ID, func() int {
				st, body, _ := x.owner.get("/owner/subs/" + x.bSub.ID)
				noLeak(t, x, "the answer", strings.ReplaceAll(body, x.bSub.ID, ""))
				return st
			})
		}},
		"POST /owner/subs/{id}/phone":           ownerPost(subPath("/phone"), bSubID, nil),
		"POST /owner/subs/{id}/protection":      ownerPost(subPath("/protection"), bSubID, url.Values{"devices": {"off"}}),
		"POST /owner/subs/{id}/status":          ownerPost(subPath("/status"), bSubID, url.Values{"action": {"depart"}}),
		"POST /owner/subs/{id}/revoke-all":      ownerPost(subPath("/revoke-all"), bSubID, nil),
		"POST /owner/subs/{id}/window":          ownerPost(subPath("/window"), bSubID, url.Values{"until": {"2030-01-01"}}),
		"POST /owner/subs/{id}/role":            ownerPost(subPath("/role"), bSubID, url.Values{"role": {"finance"}}),
		"GET /owner/positions":                  {exempt: "the session's store's positions; takes no ids (TestPositionsConsole: another store's edit does not show)"},
		"POST /owner/positions/{role}":          {exempt: "takes a catalog position key, not an id: edits the session's store only (TestPositionsConsole)"},
		"POST /owner/subs/{id}/verify/{action}": ownerPost(subPath("/verify/unfreeze"), bSubID, nil),
		"GET /verify/{link}":                    {exempt: verifyLink},
		"POST /verify/{link}/start":             {exempt: verifyLink},
		"POST /verify/{link}/submit":            {exempt: verifyLink},
		"POST /verify/callback":                 {exempt: "no session: an identity provider's signed decision (TestVerifyCallbackRefusesForgedUnsignedReplayed)"},
		"POST /owner/subs/{id}/devices/{dev}/revoke": {run: func(t *testing.T, x *isoFixture, pattern string) {
			// B's sub-account and device; then A's sub-account with B's device.
			ownerPost(func(x *isoFixture) string { return "/owner/subs/" + x.bSub.ID + "/devices/" + x.bDev.ID + "/revoke" },
				bSubID, nil).run(t, x, pattern)
			ownerPost(func(x *isoFixture) string { return "/owner/subs/" + x.aSub.ID + "/devices/" + x.bDev.ID + "/revoke" },
				bDevID, nil).run(t, x, pattern)
		}},
		"POST /owner/subs/{id}/devices/{dev}/allow-renew": {run: func(t *testing.T, x *isoFixture, pattern string) {
			// As revoke: B's sub-account and device; then A's sub-account with B's device.
			bOwn := func(x *isoFixture) string {
				return "/owner/subs/" + x.bSub.ID + "/devices/" + x.bDev.ID + "/allow-renew"
			}
			inA := func(x *isoFixture) string {
				return "/owner/subs/" + x.aSub.ID + "/devices/" + x.bDev.ID + "/allow-renew"
			}
			ownerPost(bOwn, bSubID, nil).run(t, x, pattern)
			ownerPost(inA, bDevID, nil).run(t, x, pattern)
		}},
		"GET /owner/audit": {run: func(t *testing.T, x *isoFixture, _ string) {
			for _, q := range []string{"other:" + isoBSubName, x.bSub.ID, x.bDev.ID} {
				st, body, _ := x.owner.get("/owner/audit?target=" + url.QueryEscape(q))
				if st != http.StatusOK {
					t.Fatalf("records for %q: %d", q, st)
				}
				noLeak(t, x, "A's records", strings.ReplaceAll(body, q, ""))
				if strings.Contains(body, "device.issue") || strings.Contains(body, "sub.create") {
					t.Fatalf("A's records filtered by %q show B's events:\n%s", q, body)
				}
			}
		}},
		"GET /owner/audit.csv": {run: func(t *testing.T, x *isoFixture, _ string) {
			for _, q := range []string{"other:" + isoBSubName, x.bSub.ID, x.bDev.ID} {
				st, body, _ := x.owner.get("/owner/audit.csv?target=" + url.QueryEscape(q))
				rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
				if st != http.StatusOK || err != nil || len(rows) == 0 {
					t.Fatalf("export for %q: %d %v", q, st, err)
				}
				for _, row := range rows[1:] { // only A's own records of its refused attempts
					if row[5] != "denied.cross_tenant" || row[3] != "shop" {
						t.Fatalf("A's export for %q has a row of B: %q", q, row)
					}
				}
			}
		}},
		// The owner's own computers (ownercert_test.go): the session's
		// store's owner only; B's computers are neither shown nor revoked.
		"GET /owner/certs": {run: func(t *testing.T, x *isoFixture, _ string) {
			st, body, _ := x.owner.get("/owner/certs")
			if st != http.StatusOK {
				t.Fatalf("A's owner computers: %d", st)
			}
			noLeak(t, x, "A's owner computers", body)
		}},
		"POST /owner/certs/limit":    {exempt: "takes no ids: the session's store's owner account only (TestOwnerEnrollsOwnComputers)"},
		"POST /owner/certs/required": {exempt: "takes no ids: the session's store's setting only (TestOwnerCertRequiredGate)"},
		"GET /owner/certs/enroll":    {exempt: "own identity only: the session's store's owner account"},
		"POST /owner/certs/devices/{dev}/revoke": {run: func(t *testing.T, x *isoFixture, pattern string) {
			// B's owner computer, then B's staff device, then A's staff device
			// (not an owner computer: not found either, recorded as such).
			ownerPost(func(x *isoFixture) string { return "/owner/certs/devices/" + x.bOwnerDev.ID + "/revoke" },
				func(x *isoFixture) string { return x.bOwnerDev.ID }, nil).run(t, x, pattern)
			ownerPost(func(x *isoFixture) string { return "/owner/certs/devices/" + x.bDev.ID + "/revoke" }, bDevID, nil).run(t, x, pattern)
			ownerPost(func(x *isoFixture) string { return "/owner/certs/devices/" + x.aDev + "/revoke" },
				func(x *isoFixture) string { return x.aDev }, nil).run(t, x, pattern)
			if d, _ := x.e.st.GetDevice(x.e.ctx, x.e.tenant.ID, x.aDev); d.Status != store.DeviceActive {
				t.Fatal("A's staff device was revoked through the owner's own page")
			}
		}},
		"POST /owner/api/enroll": {run: func(t *testing.T, x *isoFixture, _ string) {
			tok := x.ownerToken()
			for _, field := range []string{"sub_id", "tenant_id", "subaccount"} {
				body, _ := json.Marshal(map[string]string{"csr": string(csrPEM(t)), "label": "x", field: x.bSub.ID})
				req, _ := http.NewRequest("POST", x.owner.url("/owner/api/enroll"), strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-CSRF-Token", tok)
				if st, _, _ := x.owner.do(req); st != http.StatusBadRequest {
					t.Fatalf("owner enroll with %s of B: %d, want 400", field, st)
				}
			}
		}},
		// The API takes a CSR and a label; a sub-account or store id in the
		// body is refused (unknown field), never used.
		"POST /staff/api/enroll": {run: func(t *testing.T, x *isoFixture, _ string) {
			tok := x.staffToken(t)
			for _, field := range []string{"sub_id", "tenant_id", "subaccount"} {
				body, _ := json.Marshal(map[string]string{"csr": string(csrPEM(t)), "label": "x", field: x.bSub.ID})
				req, _ := http.NewRequest("POST", x.staff.url("/staff/api/enroll"), strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-CSRF-Token", tok)
				if st, _, _ := x.staff.do(req); st != http.StatusBadRequest {
					t.Fatalf("enroll with %s of B: %d, want 400", field, st)
				}
			}
		}},
		"GET /staff/devices/{dev}/renew": {run: func(t *testing.T, x *isoFixture, pattern string) {
			x.refusedAndAudited(t, pattern, x.bDev.ID, func() int {
				st, body, _ := x.staff.get("/staff/devices/" + x.bDev.ID + "/renew")
				noLeak(t, x, "the answer", strings.ReplaceAll(body, x.bDev.ID, ""))
				return st
			})
		}},
		"POST /staff/api/devices/{dev}/renew": {run: func(t *testing.T, x *isoFixture, pattern string) {
			tok := x.staffToken(t)
			x.refusedAndAudited(t, pattern, x.bDev.ID, func() int {
				body, _ := json.Marshal(map[string]string{"csr": string(csrPEM(t))})
				req, _ := http.NewRequest("POST", x.staff.url("/staff/api/devices/"+x.bDev.ID+"/renew"), strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-CSRF-Token", tok)
				st, _, _ := x.staff.do(req)
				return st
			})
		}},
		"POST /staff/devices/{dev}/revoke": {run: func(t *testing.T, x *isoFixture, pattern string) {
			tok := x.staffToken(t)
			x.refusedAndAudited(t, pattern, x.bDev.ID, func() int {
				st, _, _ := x.staff.post("/staff/devices/"+x.bDev.ID+"/revoke", url.Values{"csrf": {tok}})
				return st
			})
		}},
	}
}

// TestIsolationPortalRoutes: every route of the portal's table, called as
// store A's owner or staff with store B's ids, is refused (404), changes
// nothing in B and leaves a denied.cross_tenant event in A's chain. A
// route without a case (or an exemption with its reason) fails the test.
func TestIsolationPortalRoutes(t *testing.T) {
	catalog, _ := config.DefaultCatalog()
	p, err := enroll.New(enroll.Options{Store: nopStore{}, Issuer: testIssuer{}, Catalog: catalog, CookieKey: make([]byte, 32),
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	routes := p.Routes()
	cases := portalIsolationCases()
	routetable.Covered(t, "portal route", "portalIsolationCases", routes, cases)
	if t.Failed() {
		return
	}

	x := newIsoFixture(t)
	ran := 0
	for _, pattern := range routes {
		c := cases[pattern]
		if c.exempt != "" {
			continue
		}
		ran++
		t.Run(pattern, func(t *testing.T) {
			state, audit := x.bState(t)
			c.run(t, x, pattern)
			state2, audit2 := x.bState(t)
			if state2 != state {
				t.Errorf("B's sub-accounts or devices changed:\nbefore %s\nafter  %s", state, state2)
			}
			if !c.bAuditMoves && audit2 != audit {
				t.Errorf("B's audit chain changed")
			}
		})
	}
	t.Logf("%d routes, %d with cross-store attempts, %d exempt", len(routes), ran, len(routes)-ran)
	// A's and B's chains still verify.
	for _, id := range []string{x.e.tenant.ID, x.b.ID} {
		if err := x.e.st.VerifyAudit(x.e.ctx, id); err != nil {
			t.Errorf("audit chain of %s: %v", id, err)
		}
	}
}

// nopStore lets a portal be built only to read its route table.
type nopStore struct{ store.Store }
