package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// RunVerification runs the real-person verification part of the suite
// (a top-level test of its own, so `go test -run 'Verif|Freeze'` selects it).
func RunVerification(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"VerificationRecord", testVerificationRecord},
		{"VerificationFreezeReachesPolicy", testVerificationFreeze},
		{"VerificationOnePersonPerStore", testVerificationOnePerson},
		{"VerificationRefusalChangesNothing", testVerificationRefusal},
		{"VerificationLease", testVerificationLease},
		{"VerificationNonce", testVerificationNonce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t, open(t)))
		})
	}
}

// verifying creates a protected sub-account that must verify by deadline.
func (e *env) verifying(tn store.Tenant, name string, deadline time.Time) store.SubAccount {
	e.t.Helper()
	s := Sub(e.t, e.st, store.NewSubAccount{TenantID: tn.ID, Name: name, VerifyBy: deadline})
	return Protect(e.t, e.st, s, 2)
}

func (e *env) verification(s store.SubAccount) store.Verification {
	e.t.Helper()
	v, err := e.st.GetVerification(e.ctx, s.TenantID, s.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func linkSum(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// testVerificationRecord: a sub-account created with VerifyBy gets a
// record (not started, its deadline, a unique link found by its hash, the
// creation audited); one without needs none; a change is audited and can
// replace the link.
func testVerificationRecord(t *testing.T, e *env) {
	deadline := e.now.Add(store.VerifyPeriod).Truncate(time.Second)
	s := e.verifying(e.tenant, "alice", deadline)
	v := e.verification(s)
	if v.State != store.VerifyNotStarted || !v.Deadline.Equal(deadline) || v.Frozen || v.Bound || len(v.Link) < 20 || v.SubName != "shop:alice" {
		t.Fatalf("new record %+v", v)
	}
	exempt := e.mustSub(e.tenant, "temp")
	if _, err := e.st.GetVerification(e.ctx, e.tenant.ID, exempt.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a sub-account created without VerifyBy has a record: %v", err)
	}
	bob := e.verifying(e.tenant, "bob", deadline)
	if e.verification(bob).Link == v.Link {
		t.Fatal("two sub-accounts share a link")
	}
	got, err := e.st.VerificationByLink(e.ctx, linkSum(v.Link))
	if err != nil || got.SubID != s.ID || got.TenantID != e.tenant.ID {
		t.Fatalf("by link: %+v %v", got, err)
	}
	if _, err := e.st.VerificationByLink(e.ctx, linkSum("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown link: %v", err)
	}
	if list, err := e.st.ListVerifications(e.ctx, e.tenant.ID); err != nil || len(list) != 2 || list[0].SubID != s.ID {
		t.Fatalf("list: %+v %v", list, err)
	}
	started := e.now.Add(time.Minute).Truncate(time.Second)
	v2, err := e.st.UpdateVerification(e.ctx, s.TenantID, s.ID, actor, "verify.start", func(v *store.Verification) (map[string]string, error) {
		v.State, v.StartedAt, v.Link = store.VerifyInProgress, started, "new-link-token-0123456789"
		return map[string]string{"step": "start"}, nil
	})
	if err != nil || v2.State != store.VerifyInProgress || !v2.StartedAt.Equal(started) {
		t.Fatalf("start: %+v %v", v2, err)
	}
	if _, err := e.st.VerificationByLink(e.ctx, linkSum(v.Link)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replaced link still works: %v", err)
	}
	if got, err := e.st.VerificationByLink(e.ctx, linkSum("new-link-token-0123456789")); err != nil || got.SubID != s.ID {
		t.Fatalf("new link: %+v %v", got, err)
	}
	evs := mustAudit(t, e)
	last := evs[len(evs)-1]
	if last.Action != "verify.start" || last.Target != "shop:alice" || last.Detail["state"] != "in_progress" || last.Detail["step"] != "start" {
		t.Fatalf("audit %+v", last)
	}
	var required int
	for _, ev := range evs {
		if ev.Action == "verify.required" {
			required++
		}
	}
	if required != 2 {
		t.Fatalf("%d verify.required events, want 2", required)
	}
	if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
}

// testVerificationFreeze: a freeze sets the sub-account's flag with a new
// policy seq (PolicyChangesSince carries it), refuses issuing, ends its
// sessions; overdue lists only pending, unfrozen, past-deadline records;
// the unfreeze clears the flag with another seq.
func testVerificationFreeze(t *testing.T, e *env) {
	past := e.now.Add(-time.Hour)
	s := e.verifying(e.tenant, "alice", past)
	e.verifying(e.tenant, "later", e.now.Add(time.Hour))
	reviewed := e.verifying(e.tenant, "reviewed", past)
	if _, err := e.st.UpdateVerification(e.ctx, s.TenantID, reviewed.ID, actor, "verify.submit", func(v *store.Verification) (map[string]string, error) {
		v.State = store.VerifyUnderReview
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	over, err := e.st.OverdueVerifications(e.ctx, e.now, 0)
	if err != nil || len(over) != 1 || over[0].SubID != s.ID {
		t.Fatalf("overdue: %+v %v", over, err)
	}
	sess := e.newSession("verify-sess", &s, e.now)
	if err := e.st.CreateSession(e.ctx, sess, nil); err != nil {
		t.Fatal(err)
	}
	before := e.seq()
	v, err := e.st.UpdateVerification(e.ctx, s.TenantID, s.ID, store.Actor{Kind: "system", Name: "verify-job"}, "verify.freeze", func(v *store.Verification) (map[string]string, error) {
		v.Frozen = true
		return nil, nil
	})
	if err != nil || !v.Frozen {
		t.Fatalf("freeze: %+v %v", v, err)
	}
	ch, err := e.st.PolicyChangesSince(e.ctx, before)
	if err != nil || len(ch.SubAccounts) != 1 || ch.SubAccounts[0].ID != s.ID || !ch.SubAccounts[0].VerifyFrozen || ch.Seq <= before {
		t.Fatalf("policy after freeze: %+v %v", ch, err)
	}
	if got, _ := e.st.GetSubAccount(e.ctx, s.TenantID, s.ID); !got.VerifyFrozen {
		t.Fatal("the sub-account is not marked frozen")
	}
	if _, err := e.st.GetSession(e.ctx, sess.Hash, e.now); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("a frozen sub-account's session lives on: %v", err)
	}
	var ne *store.NotEligibleError
	if _, _, err := e.st.IssueDevice(e.ctx, e.issueReq(s), actor); !errors.As(err, &ne) || ne.Reason != "not_verified" {
		t.Fatalf("issuing to a frozen sub-account: %v", err)
	}
	if over, _ := e.st.OverdueVerifications(e.ctx, e.now, 0); len(over) != 0 {
		t.Fatalf("a frozen record is still overdue: %+v", over)
	}
	mid := e.seq()
	if _, err := e.st.UpdateVerification(e.ctx, s.TenantID, s.ID, actor, "verify.unfreeze", func(v *store.Verification) (map[string]string, error) {
		v.Frozen, v.Deadline, v.Unfreezes = false, e.now.Add(store.UnfreezePeriod), v.Unfreezes+1
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	ch, _ = e.st.PolicyChangesSince(e.ctx, mid)
	if len(ch.SubAccounts) != 1 || ch.SubAccounts[0].VerifyFrozen {
		t.Fatalf("policy after unfreeze: %+v", ch)
	}
	if _, _, err := e.st.IssueDevice(e.ctx, e.issueReq(s), actor); err != nil {
		t.Fatalf("issuing after the unfreeze: %v", err)
	}
	// A step that does not touch the freeze moves no policy seq.
	q := e.seq()
	if _, err := e.st.UpdateVerification(e.ctx, s.TenantID, s.ID, actor, "verify.start", func(v *store.Verification) (map[string]string, error) {
		v.State = store.VerifyInProgress
		return nil, nil
	}); err != nil || e.seq() != q {
		t.Fatalf("a step moved the policy seq %d -> %d (%v)", q, e.seq(), err)
	}
}

// testVerificationOnePerson: within one store a person (identity number
// or phone) binds one sub-account; another store may bind the same person;
// unbinding frees the person.
func testVerificationOnePerson(t *testing.T, e *env) {
	deadline := e.now.Add(store.VerifyPeriod)
	a := e.verifying(e.tenant, "alice", deadline)
	b := e.verifying(e.tenant, "bob", deadline)
	other := e.mustTenant("other")
	c := e.verifying(other, "carol", deadline)
	person := store.Person{IDNumber: "11010519491231002X", Phone: "13800138000"}
	bind := func(s store.SubAccount, p store.Person) error {
		_, err := e.st.UpdateVerification(e.ctx, s.TenantID, s.ID, actor, "verify.submit", func(v *store.Verification) (map[string]string, error) {
			v.State, v.Person, v.Holder = store.VerifyUnderReview, &p, "Li Lei"
			return nil, nil
		})
		return err
	}
	if err := bind(a, person); err != nil {
		t.Fatal(err)
	}
	if v := e.verification(a); !v.Bound || v.Holder != "Li Lei" {
		t.Fatalf("bound record %+v", v)
	}
	for _, tc := range []struct {
		name string
		p    store.Person
	}{
		{"same person", person},
		{"same identity number", store.Person{IDNumber: person.IDNumber, Phone: "13900139000"}},
		{"same phone", store.Person{IDNumber: "110105194912310038", Phone: person.Phone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.unchanged(b, func() { wantErr(t, bind(b, tc.p), store.ErrPersonBound) })
			if v := e.verification(b); v.State != store.VerifyNotStarted || v.Bound {
				t.Fatalf("a refused bind changed the record: %+v", v)
			}
		})
	}
	if err := bind(c, person); err != nil {
		t.Fatalf("the same person in another store: %v", err)
	}
	if _, err := e.st.UpdateVerification(e.ctx, a.TenantID, a.ID, actor, "verify.unbind", func(v *store.Verification) (map[string]string, error) {
		v.State, v.Bound, v.Holder = store.VerifyNotStarted, false, ""
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bind(b, person); err != nil {
		t.Fatalf("binding after the unbind: %v", err)
	}
}

// testVerificationRefusal: bad changes and unknown ids change nothing.
func testVerificationRefusal(t *testing.T, e *env) {
	s := e.verifying(e.tenant, "alice", e.now.Add(store.VerifyPeriod))
	other := e.mustTenant("other")
	exempt := e.mustSub(e.tenant, "temp")
	boom := errors.New("refused by the rules")
	for _, tc := range []struct {
		name   string
		tenant string
		sub    string
		action string
		change store.VerificationChange
		want   error
	}{
		{"rule refuses", e.tenant.ID, s.ID, "verify.start", func(v *store.Verification) (map[string]string, error) { v.Frozen = true; return nil, boom }, boom},
		{"bad state", e.tenant.ID, s.ID, "verify.start", func(v *store.Verification) (map[string]string, error) { v.State = "done"; return nil, nil }, store.ErrInvalid},
		{"no deadline", e.tenant.ID, s.ID, "verify.start", func(v *store.Verification) (map[string]string, error) { v.Deadline = time.Time{}; return nil, nil }, store.ErrInvalid},
		{"no link", e.tenant.ID, s.ID, "verify.start", func(v *store.Verification) (map[string]string, error) { v.Link = ""; return nil, nil }, store.ErrInvalid},
		{"long reason", e.tenant.ID, s.ID, "verify.reject", func(v *store.Verification) (map[string]string, error) {
			v.Reason = strings.Repeat("x", 501)
			return nil, nil
		}, store.ErrInvalid},
		{"no action", e.tenant.ID, s.ID, "", func(v *store.Verification) (map[string]string, error) { return nil, nil }, store.ErrInvalid},
		{"other store", other.ID, s.ID, "verify.start", func(v *store.Verification) (map[string]string, error) { return nil, nil }, store.ErrNotFound},
		{"exempt sub-account", e.tenant.ID, exempt.ID, "verify.start", func(v *store.Verification) (map[string]string, error) { return nil, nil }, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.verification(s)
			e.unchanged(s, func() {
				_, err := e.st.UpdateVerification(e.ctx, tc.tenant, tc.sub, actor, tc.action, tc.change)
				wantErr(t, err, tc.want)
			})
			if after := e.verification(s); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("record changed: %+v -> %+v", before, after)
			}
		})
	}
	if _, err := e.st.VerificationByLink(e.ctx, []byte("short")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a malformed link hash: %v", err)
	}
}

// testVerificationLease: one holder at a time; the holder extends; another
// takes over only after the lease ended; concurrent takers: exactly one.
func testVerificationLease(t *testing.T, e *env) {
	ttl := time.Minute
	ok := func(holder string, at time.Time) bool {
		t.Helper()
		got, err := e.st.AcquireLease(e.ctx, "verify-deadlines", holder, at, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if !ok("node-a", e.now) || !ok("node-a", e.now.Add(30*time.Second)) {
		t.Fatal("the holder could not take or extend its lease")
	}
	if ok("node-b", e.now.Add(80*time.Second)) {
		t.Fatal("another node took a lease that was extended until now+90s")
	}
	if !ok("node-b", e.now.Add(91*time.Second)) || ok("node-a", e.now.Add(92*time.Second)) {
		t.Fatal("the lease did not move to node-b after it ended")
	}
	if _, err := e.st.AcquireLease(e.ctx, "", "x", e.now, ttl); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a lease without a name: %v", err)
	}
	var won atomic.Int32
	later := e.now.Add(time.Hour)
	errs := race(8, func(i int) error {
		got, err := e.st.AcquireLease(e.ctx, "race", fmt.Sprintf("node-%d", i), later, ttl)
		if got {
			won.Add(1)
		}
		return err
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, store.ErrStale) {
			t.Fatal(err)
		}
	}
	if won.Load() != 1 {
		t.Fatalf("%d nodes hold the lease at once", won.Load())
	}
}

// testVerificationNonce: a nonce works once until it expires.
func testVerificationNonce(t *testing.T, e *env) {
	exp := e.now.Add(10 * time.Minute)
	if err := e.st.UseNonce(e.ctx, "n1", exp, e.now); err != nil {
		t.Fatal(err)
	}
	wantErr(t, e.st.UseNonce(e.ctx, "n1", exp, e.now.Add(time.Minute)), store.ErrDuplicate)
	if err := e.st.UseNonce(e.ctx, "n2", exp, e.now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		nonce string
		exp   time.Time
	}{{"empty", "", exp}, {"long", strings.Repeat("n", 129), exp}, {"expired", "n3", e.now.Add(-time.Second)}} {
		wantErr(t, e.st.UseNonce(e.ctx, tc.nonce, tc.exp, e.now), store.ErrInvalid)
	}
}
