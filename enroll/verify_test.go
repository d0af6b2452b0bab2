package enroll_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

const verifyStaffPassword = "staff-password-1"

// verification is the stored record of s.
func (e *env) verification(s store.SubAccount) store.Verification {
	e.t.Helper()
	v, err := e.st.GetVerification(e.ctx, s.TenantID, s.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// runJob runs the deadline job once at the env's clock.
func (e *env) runJob(holder string) int {
	e.t.Helper()
	n, err := enroll.VerifyDeadlines{Store: e.st, Holder: holder, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }}.RunOnce(e.ctx, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// zh makes the browser ask for Chinese pages.
func (b *browser) zh() {
	b.c.Jar.SetCookies(mustURL(b.url("/")), []*http.Cookie{{Name: "dg_lang", Value: "zh"}})
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

// TestVerifyFreezeUnfreezeVerifyFlow walks seeds 001/003 through the
// portal with the portal's clock: a new sub-account gets its link and QR
// code and 7 days; past them the job freezes it (no login; the owner sees
// it frozen); the owner lifts the freeze for 2 days; the staff member
// starts, lets an attempt expire after 30 minutes (expired-link message),
// starts again and submits (under review: the account keeps working, the
// job does not freeze it past the deadline); the owner approves; the
// person is never shown; unbinding gives a new link and 7 days, and the
// old link no longer works.
func TestVerifyFreezeUnfreezeVerifyFlow(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	ownerSecret := owner.ownerLogin("")
	created := e.now
	sub := owner.newSub("xiaohong", "customer-service", verifyStaffPassword)
	v := e.verification(sub)
	if v.State != store.VerifyNotStarted || !v.Deadline.Equal(created.Add(store.VerifyPeriod).Truncate(time.Microsecond)) {
		t.Fatalf("new sub-account's verification %+v (created %v)", v, created)
	}
	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, `id="verify-link">`+e.srv.URL+"/verify/"+v.Link) || !strings.Contains(owner.last, `alt="verification QR"`) ||
		!strings.Contains(owner.last, "Not started") {
		t.Fatalf("owner page lacks the link, the QR code or the state:\n%s", owner.last)
	}

	// Day 7 + 1 minute: the job freezes the sub-account.
	e.now = created.Add(store.VerifyPeriod + time.Minute)
	if n := e.runJob("node-a"); n != 1 {
		t.Fatalf("froze %d, want 1", n)
	}
	if n := e.runJob("node-a"); n != 0 {
		t.Fatalf("a second run froze %d more", n)
	}
	staff := e.browser()
	staff.get("/staff/login")
	if st, body, _ := staff.post("/staff/login", url.Values{"username": {"shop:xiaohong"}, "password": {verifyStaffPassword}}); st != http.StatusForbidden ||
		!strings.Contains(body, "not finished within 7 days") {
		t.Fatalf("frozen login: %d\n%s", st, body)
	}
	owner.ownerLogin(ownerSecret) // a week later: a new login
	owner.get("/owner/")
	if !strings.Contains(owner.last, "Frozen (not verified)") {
		t.Fatalf("owner list does not show the freeze:\n%s", owner.last)
	}

	// The owner lifts the freeze: 2 days from now.
	owner.get("/owner/subs/" + sub.ID)
	if st, _, loc := owner.post("/owner/subs/"+sub.ID+"/verify/unfreeze", url.Values{}); st != http.StatusSeeOther || !strings.Contains(loc, "verify_unfrozen") {
		t.Fatalf("unfreeze: %d %s\n%s", st, loc, owner.last)
	}
	if v = e.verification(sub); v.Frozen || !v.Deadline.Equal(e.now.Add(store.UnfreezePeriod).Truncate(time.Microsecond)) || v.Unfreezes != 1 {
		t.Fatalf("after unfreeze %+v", v)
	}
	staff.staffLogin("shop:xiaohong", verifyStaffPassword, "")
	staff.get("/staff/")
	if !strings.Contains(staff.last, `id="verify-banner"`) || !strings.Contains(staff.last, "/verify/"+v.Link) {
		t.Fatalf("staff home has no verification banner:\n%s", staff.last)
	}

	// An attempt past 30 minutes expires; a new one succeeds.
	link := "/verify/" + v.Link
	staff.get(link)
	if st, _, _ := staff.post(link+"/start", url.Values{}); st != http.StatusOK || !strings.Contains(staff.last, `id="verify-form"`) {
		t.Fatalf("start: %d\n%s", st, staff.last)
	}
	e.now = e.now.Add(store.VerifyAttempt + time.Second)
	staff.staffLogin("shop:xiaohong", verifyStaffPassword, "") // the portal session idled out too
	staff.get(link)
	if strings.Contains(staff.last, `id="verify-form"`) {
		t.Fatal("the form is shown after the attempt expired")
	}
	person := url.Values{"holder": {"李雷"}, "id_number": {"11010519491231002X"}, "phone": {"138 0013 8000"}}
	if st, body, _ := staff.post(link+"/submit", person); st != http.StatusGone || !strings.Contains(body, "within 30 minutes") {
		t.Fatalf("late submit: %d\n%s", st, body)
	}
	if st, _, _ := staff.post(link+"/start", url.Values{}); st != http.StatusOK {
		t.Fatalf("start again: %d", st)
	}
	e.now = e.now.Add(29 * time.Minute)
	delete(person, "csrf")
	if st, body, _ := staff.post(link+"/submit", person); st != http.StatusOK || !strings.Contains(body, "within 48 hours") {
		t.Fatalf("submit: %d\n%s", st, body)
	}
	if v = e.verification(sub); v.State != store.VerifyUnderReview || !v.Bound || v.Holder != "李雷" {
		t.Fatalf("submitted %+v", v)
	}

	// Under review past the deadline: not frozen, still logs in.
	e.now = e.now.Add(store.UnfreezePeriod + time.Hour)
	if n := e.runJob("node-a"); n != 0 {
		t.Fatalf("the job froze %d sub-accounts under review", n)
	}
	e.browser().staffLogin("shop:xiaohong", verifyStaffPassword, "")

	owner.ownerLogin(ownerSecret)
	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, "Under review") || !strings.Contains(owner.last, "李雷") {
		t.Fatalf("owner page under review:\n%s", owner.last)
	}
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/verify/approve", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("approve: %d\n%s", st, owner.last)
	}
	owner.get("/owner/subs/" + sub.ID)
	for _, secret := range []string{"11010519491231002X", "13800138000", "0013"} {
		if strings.Contains(owner.last, secret) {
			t.Fatalf("the owner page shows %q", secret)
		}
	}
	if !strings.Contains(owner.last, "Verified") || strings.Contains(owner.last, `alt="verification QR"`) {
		t.Fatalf("owner page after approval:\n%s", owner.last)
	}
	e.now = e.now.Add(30 * 24 * time.Hour)
	if n := e.runJob("node-a"); n != 0 {
		t.Fatalf("the job froze a verified sub-account")
	}
	owner.ownerLogin(ownerSecret)
	owner.get("/owner/subs/" + sub.ID)

	// 解除: a new link, 7 more days; the old link is dead.
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/verify/unbind", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("unbind: %d\n%s", st, owner.last)
	}
	nv := e.verification(sub)
	if nv.State != store.VerifyNotStarted || nv.Bound || nv.Holder != "" || nv.Link == v.Link || !nv.Deadline.Equal(e.now.Add(store.VerifyPeriod).Truncate(time.Microsecond)) {
		t.Fatalf("after unbind %+v", nv)
	}
	staff.staffLogin("shop:xiaohong", verifyStaffPassword, "")
	if st, body, _ := staff.get(link); st != http.StatusNotFound || !strings.Contains(body, "not valid") {
		t.Fatalf("old link after unbind: %d\n%s", st, body)
	}

	// Every step is in the store's records, and the chain verifies.
	evs, err := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Action+"/"+ev.Outcome] = true
	}
	for _, want := range []string{"verify.required/ok", "verify.freeze/ok", "sub.login/not_verified", "verify.unfreeze/ok", "verify.start/ok",
		"verify.submit/expired", "verify.submit/ok", "verify.approve/ok", "verify.unbind/ok"} {
		if !seen[want] {
			t.Errorf("no audit event %s", want)
		}
	}
	if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAccountMismatch: a link opened by another sub-account, of the
// same or another store, answers "account mismatch" (zh and en), changes
// nothing and is audited in the opener's store; without a login the link
// leads to the login page.
func TestVerifyAccountMismatch(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	alice := owner.newSub("alice", "customer-service", verifyStaffPassword)
	bob := owner.newSub("bob", "customer-service", verifyStaffPassword)
	otherStore := storetest.Tenant(t, e.st, "other")
	hash, _ := secrets.HashPassword(verifyStaffPassword)
	carol := storetest.Sub(t, e.st, store.NewSubAccount{TenantID: otherStore.ID, Name: "carol", PasswordHash: hash, VerifyBy: e.now.Add(store.VerifyPeriod)})

	otherRecords, _ := e.st.ListAudit(e.ctx, otherStore.ID, store.AuditFilter{})
	otherEvents := len(otherRecords)
	anon := e.browser()
	if st, _, loc := anon.get("/verify/" + e.verification(alice).Link); st != http.StatusSeeOther || loc != "/staff/login" {
		t.Fatalf("link without login: %d %s", st, loc)
	}
	staff := e.browser()
	staff.staffLogin("shop:bob", verifyStaffPassword, "")
	for _, tc := range []struct {
		name string
		v    store.Verification
	}{
		{"same store, other sub-account", e.verification(alice)},
		{"other store", e.verification(carol)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.v
			if st, body, _ := staff.get("/verify/" + tc.v.Link); st != http.StatusForbidden || !strings.Contains(body, "Account mismatch") {
				t.Fatalf("mismatch page: %d\n%s", st, body)
			}
			staff.get("/staff/")
			if st, _, _ := staff.post("/verify/"+tc.v.Link+"/start", url.Values{}); st != http.StatusForbidden {
				t.Fatalf("mismatch start: %d", st)
			}
			if after, _ := e.st.GetVerification(e.ctx, before.TenantID, before.SubID); after.State != before.State || !after.StartedAt.Equal(before.StartedAt) {
				t.Fatalf("a mismatched link changed %+v -> %+v", before, after)
			}
		})
	}
	staff.zh()
	if _, body, _ := staff.get("/verify/" + e.verification(carol).Link); !strings.Contains(body, "账号不一致") {
		t.Fatalf("zh mismatch page:\n%s", body)
	}
	if _, body, _ := staff.get("/verify/" + e.verification(bob).Link); !strings.Contains(body, "开始认证") {
		t.Fatalf("own link, zh:\n%s", body)
	}
	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	mismatches := 0
	for _, ev := range evs {
		if ev.Action == "verify.open" && ev.Outcome == "mismatch" && ev.Target == "shop:bob" {
			mismatches++
		}
	}
	if mismatches < 2 {
		t.Fatalf("%d mismatches audited in bob's store", mismatches)
	}
	if other, _ := e.st.ListAudit(e.ctx, otherStore.ID, store.AuditFilter{}); len(other) != otherEvents {
		t.Fatalf("the other store's records changed: %d events, want %d", len(other), otherEvents)
	}
}

// submitAs logs in as name, starts its verification and submits person.
func submitAs(e *env, name string, person url.Values) (int, string) {
	e.t.Helper()
	s, _ := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, name)
	b := e.browser()
	b.staffLogin("shop:"+name, verifyStaffPassword, "")
	link := "/verify/" + e.verification(s).Link
	b.get(link)
	if st, _, _ := b.post(link+"/start", url.Values{}); st != http.StatusOK {
		e.t.Fatalf("start as %s: %d\n%s", name, st, b.last)
	}
	form := url.Values{}
	for k, v := range person {
		if k != "csrf" {
			form[k] = v
		}
	}
	st, body, _ := b.post(link+"/submit", form)
	return st, body
}

// TestVerifyOnePersonPerStoreAndReject: a person bound to one sub-account
// cannot verify another of the store (message), bad input is refused; a
// rejection needs a reason, frees the person, shows the reason and leaves
// at least 2 days to try again.
func TestVerifyOnePersonPerStoreAndReject(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	ownerSecret := owner.ownerLogin("")
	alice := owner.newSub("alice", "customer-service", verifyStaffPassword)
	owner.newSub("bob", "customer-service", verifyStaffPassword)
	person := url.Values{"holder": {"Li"}, "id_number": {"11010519491231002X"}, "phone": {"13800138000"}}
	if st, _ := submitAs(e, "alice", person); st != http.StatusOK {
		t.Fatalf("alice: %d", st)
	}
	samePhone := url.Values{"holder": {"Han"}, "id_number": {"110105194912310038"}, "phone": {"+86 138-0013-8000"}}
	if st, body := submitAs(e, "bob", samePhone); st != http.StatusConflict || !strings.Contains(body, "already bound to another sub-account") {
		t.Fatalf("bob with alice's phone: %d\n%s", st, body)
	}
	for _, bad := range []url.Values{
		{"holder": {""}, "id_number": {"110105194912310038"}, "phone": {"13900139000"}},
		{"holder": {"Han"}, "id_number": {"1101<script>"}, "phone": {"13900139000"}},
		{"holder": {"Han"}, "id_number": {"110105194912310038"}, "phone": {"phone"}},
	} {
		if st, body := submitAs(e, "bob", bad); st != http.StatusBadRequest || !strings.Contains(body, "Check the name") {
			t.Fatalf("bad input %v: %d\n%s", bad, st, body)
		}
	}
	owner.get("/owner/subs/" + alice.ID)
	if st, _, _ := owner.post("/owner/subs/"+alice.ID+"/verify/reject", url.Values{"reason": {""}}); st != http.StatusBadRequest {
		t.Fatalf("reject without reason: %d", st)
	}
	e.now = e.verification(alice).Deadline.Add(-time.Hour) // one hour before the first deadline
	owner.ownerLogin(ownerSecret)
	owner.get("/owner/subs/" + alice.ID)
	if st, _, _ := owner.post("/owner/subs/"+alice.ID+"/verify/reject", url.Values{"reason": {"photo unreadable"}}); st != http.StatusSeeOther {
		t.Fatalf("reject: %d\n%s", st, owner.last)
	}
	v := e.verification(alice)
	if v.State != store.VerifyRejected || v.Bound || v.Reason != "photo unreadable" || v.Deadline.Before(e.now.Add(store.UnfreezePeriod)) {
		t.Fatalf("rejected %+v", v)
	}
	if st, body := submitAs(e, "bob", person); st != http.StatusOK {
		t.Fatalf("the person freed by the rejection: %d\n%s", st, body)
	}
	b := e.browser()
	b.staffLogin("shop:alice", verifyStaffPassword, "")
	if _, body, _ := b.get("/verify/" + v.Link); !strings.Contains(body, "photo unreadable") {
		t.Fatalf("staff does not see the reason:\n%s", body)
	}
}

// callbackPortal is a portal with the identity provider's callback on.
func callbackPortal(e *env, key []byte) *httptest.Server {
	catalog, _ := config.DefaultCatalog()
	p, err := enroll.New(enroll.Options{Store: e.st, Issuer: testIssuer{e.authority}, Catalog: catalog, CookieKey: make([]byte, 32),
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }, VerifyCallbackKey: key})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewTLSServer(p)
	e.t.Cleanup(srv.Close)
	return srv
}

func hmacHex(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestVerifyCallbackRefusesForgedUnsignedReplayed: the provider's signed
// decision verifies a submission once; an unsigned, forged, stale or
// replayed result, or one for a verification not under review, changes
// nothing; with no key configured the endpoint does not exist.
func TestVerifyCallbackRefusesForgedUnsignedReplayed(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	alice := owner.newSub("alice", "customer-service", verifyStaffPassword)
	key := []byte("provider-shared-key-0123456789ab")
	srv := callbackPortal(e, key)
	post := func(body []byte, sig string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/verify/callback", bytes.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Devicegate-Signature", sig)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	result := func(nonce string, at time.Time) []byte {
		b, _ := json.Marshal(map[string]any{"tenant_id": e.tenant.ID, "sub_id": alice.ID, "decision": "verified", "nonce": nonce, "issued_at": at})
		return b
	}
	notUnderReview := result("nonce-not-under-review", e.now)
	if st := post(notUnderReview, hmacHex(key, notUnderReview)); st != http.StatusConflict {
		t.Fatalf("decision before a submission: %d", st)
	}
	if st, _ := submitAs(e, "alice", url.Values{"holder": {"Li"}, "id_number": {"11010519491231002X"}, "phone": {"13800138000"}}); st != http.StatusOK {
		t.Fatalf("submit: %d", st)
	}
	good := result("nonce-0123456789-a", e.now)
	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		status int
	}{
		{"unsigned", good, "", http.StatusUnauthorized},
		{"forged", good, hmacHex([]byte("not-the-provider-key-0123456789a"), good), http.StatusUnauthorized},
		{"signed, then altered", bytes.Replace(good, []byte("verified"), []byte("rejected"), 1), hmacHex(key, good), http.StatusUnauthorized},
		{"stale", result("nonce-0123456789-b", e.now.Add(-time.Hour)), "", http.StatusBadRequest},
		{"from the future", result("nonce-0123456789-c", e.now.Add(time.Hour)), "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			if sig == "" && tc.status != http.StatusUnauthorized {
				sig = hmacHex(key, tc.body)
			}
			if st := post(tc.body, sig); st != tc.status {
				t.Fatalf("status %d, want %d", st, tc.status)
			}
			if v := e.verification(alice); v.State != store.VerifyUnderReview {
				t.Fatalf("a refused callback changed the state to %s", v.State)
			}
		})
	}
	if st := post(good, hmacHex(key, good)); st != http.StatusNoContent {
		t.Fatalf("signed decision: %d", st)
	}
	if v := e.verification(alice); v.State != store.VerifyVerified {
		t.Fatalf("after the decision: %s", v.State)
	}
	if st := post(good, hmacHex(key, good)); st != http.StatusConflict {
		t.Fatalf("replayed decision: %d", st)
	}
	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	if last := evs[len(evs)-1]; last.Action != "verify.approve" || last.Actor.Name != "verifier:manual" {
		t.Fatalf("last event %+v", last)
	}
	// The default portal has no callback endpoint.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/verify/callback", bytes.NewReader(good))
	req.Header.Set("X-Devicegate-Signature", hmacHex(key, good))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("callback without a key: %d", resp.StatusCode)
	}
}

// TestVerifyDeadlinesOneNodeAtATime: while one node holds the job's lease
// another does nothing; it takes over once the lease ended.
func TestVerifyDeadlinesOneNodeAtATime(t *testing.T) {
	e := newEnv(t)
	s := storetest.Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "alice", VerifyBy: e.now.Add(-time.Second)})
	job := func(holder string) enroll.VerifyDeadlines {
		return enroll.VerifyDeadlines{Store: e.st, Holder: holder, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }}
	}
	if n, err := job("node-a").RunOnce(e.ctx, time.Minute); n != 1 || err != nil {
		t.Fatalf("node-a: %d %v", n, err)
	}
	if n, err := job("node-b").RunOnce(e.ctx, time.Minute); n != -1 || err != nil {
		t.Fatalf("node-b while node-a holds the lease: %d %v", n, err)
	}
	e.now = e.now.Add(time.Minute)
	if n, err := job("node-b").RunOnce(e.ctx, time.Minute); n != 0 || err != nil {
		t.Fatalf("node-b after the lease: %d %v", n, err)
	}
	if !e.verification(s).Frozen {
		t.Fatal("not frozen")
	}
}
