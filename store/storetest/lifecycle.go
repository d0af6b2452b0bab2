package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlstore"
)

// RunLifecycle checks temporary sub-accounts (a validity window), positions
// per store and names never reused, on one backend. The backends call it
// from a test named so that `go test -run 'Temporary|Position'` selects it.
// dropTrigger (as for RunInternals) lets the audit check tamper with a row.
func RunLifecycle(t *testing.T, open func(t *testing.T) *sqlstore.DB, dropTrigger string) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"TemporaryWindow", testTemporaryWindow},
		{"TemporaryExemptFromVerification", testTemporaryExemptFromVerification},
		{"PositionEdit", testPositionEdit},
		{"PositionBadInput", testPositionBadInput},
		{"PositionNamesNeverReused", testPositionNamesNeverReused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t, open(t)))
		})
	}
	t.Run("PositionAuditTamper", func(t *testing.T) {
		t.Parallel()
		db := open(t)
		testPositionAuditTamper(t, newEnv(t, db), db, dropTrigger)
	})
}

// A temporary account works inside its window only; certificates must
// end with it; extending it is an audited change that reaches the policy.
func testTemporaryWindow(t *testing.T, e *env) {
	// The seed's promotion: 11-01 to 12-21 (the clock is the caller's).
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 12, 21, 0, 0, 0, 0, time.UTC)
	s := Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "双11客服", Role: "customer-service",
		Window: store.Window{NotBefore: from, NotAfter: until}})
	if !s.Temporary() || !s.Window.NotBefore.Equal(from) || !s.Window.NotAfter.Equal(until) {
		t.Fatalf("created %+v, want a temporary account %v..%v", s.Window, from, until)
	}
	if perm := e.mustSub(e.tenant, "permanent"); perm.Temporary() {
		t.Fatal("an account without a window is temporary")
	}
	s = Protect(t, e.st, s, 2)
	issueAt := func(now, certEnd time.Time) error {
		r := e.issueReq(s)
		r.Now, r.IssuedAt, r.ExpiresAt = now, now, certEnd
		_, _, err := e.st.IssueDevice(e.ctx, r, actor)
		return err
	}
	refused := func(err error, reason string) {
		t.Helper()
		var ne *store.NotEligibleError
		if !errors.As(err, &ne) || ne.Reason != reason {
			t.Fatalf("got %v, want not eligible (%s)", err, reason)
		}
	}
	for _, tc := range []struct {
		name         string
		now, certEnd time.Time
		reason       string // "" = issued
	}{
		{"before the window", from.Add(-time.Hour), until, "outside_validity_window"},
		{"certificate outlives the window", from.Add(time.Hour), until.Add(time.Second), "expires_after_window"},
		{"at the window's end", until, until.Add(time.Hour), "outside_validity_window"},
		{"after the window", until.Add(time.Hour), until.Add(48 * time.Hour), "outside_validity_window"},
		{"inside, ending with the window", from.Add(time.Hour), until, ""},
	} {
		if tc.reason == "" {
			if err := issueAt(tc.now, tc.certEnd); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			continue
		}
		e.unchanged(s, func() { refused(issueAt(tc.now, tc.certEnd), tc.reason) })
	}
	if !s.WindowEnded(until) || s.WindowEnded(until.Add(-time.Nanosecond)) {
		t.Fatal("WindowEnded is wrong at the window's end")
	}

	// Extending is audited with the old and the new end, and proxies see it.
	seq := e.seq()
	later := until.Add(10 * 24 * time.Hour)
	ext, err := e.st.SetValidity(e.ctx, e.tenant.ID, s.ID, store.Window{NotBefore: from, NotAfter: later}, actor)
	if err != nil || !ext.Window.NotAfter.Equal(later) || ext.ChangeSeq <= seq {
		t.Fatalf("extend: %+v %v", ext.Window, err)
	}
	ch, err := e.st.PolicyChangesSince(e.ctx, seq)
	if err != nil || len(ch.SubAccounts) != 1 || !ch.SubAccounts[0].Window.NotAfter.Equal(later) {
		t.Fatalf("policy after the extension: %+v %v", ch.SubAccounts, err)
	}
	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "sub.validity"})
	if len(evs) != 1 || evs[0].Detail["before_not_after"] != until.Format(time.RFC3339) || evs[0].Detail["not_after"] != later.Format(time.RFC3339) {
		t.Fatalf("extension audit: %+v", evs)
	}
	if err := issueAt(until.Add(time.Hour), later); err != nil {
		t.Fatalf("inside the extended window: %v", err)
	}
	// A window that ends before it starts changes nothing.
	e.unchanged(s, func() {
		_, err := e.st.SetValidity(e.ctx, e.tenant.ID, s.ID, store.Window{NotBefore: later, NotAfter: from}, actor)
		wantErr(t, err, store.ErrInvalid)
	})
}

// An owner's edit of a position reaches exactly that store's sub-accounts
// of that position, through the policy, and is audited.
func testPositionEdit(t *testing.T, e *env) {
	other := e.mustTenant("other")
	cs := Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "cs", Role: "customer-service", Grants: []string{"reports"}})
	ops := Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "ops", Role: "operations"})
	otherCS := Sub(t, e.st, store.NewSubAccount{TenantID: other.ID, Name: "cs", Role: "customer-service"})
	seq := e.seq()

	p, err := e.st.SetPosition(e.ctx, e.tenant.ID, "customer-service", []string{"refunds", "chat", "chat"}, actor)
	if err != nil || p.ChangeSeq <= seq || !slices.Equal(p.Points, []string{"chat", "refunds"}) {
		t.Fatalf("SetPosition: %+v %v", p, err)
	}
	ch, err := e.st.PolicyChangesSince(e.ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.SubAccounts) != 1 || ch.SubAccounts[0].ID != cs.ID || !ch.SubAccounts[0].RoleEdited ||
		!slices.Equal(ch.SubAccounts[0].RolePoints, []string{"chat", "refunds"}) {
		t.Fatalf("policy after the edit: %+v (want only %s with the store's points)", ch.SubAccounts, cs.ID)
	}
	got := store.EffectivePermissions(ch.SubAccounts[0], []string{"orders.sold"})
	if !slices.Equal(got, []string{"chat", "refunds", "reports"}) {
		t.Fatalf("effective permissions %v: the store's points and the grants, not the catalog's", got)
	}
	// A full load carries the edit too; the other store's position is untouched.
	all, err := e.st.PolicyChangesSince(e.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all.SubAccounts {
		switch a.ID {
		case cs.ID:
			if !a.RoleEdited {
				t.Fatal("first load lost the edit")
			}
		case ops.ID, otherCS.ID:
			if a.RoleEdited {
				t.Fatalf("%s got another position's or store's edit", a.FullName())
			}
		}
	}
	if list, err := e.st.ListPositions(e.ctx, other.ID); err != nil || len(list) != 0 {
		t.Fatalf("other store's positions: %+v %v", list, err)
	}
	list, err := e.st.ListPositions(e.ctx, e.tenant.ID)
	if err != nil || len(list) != 1 || list[0].Role != "customer-service" {
		t.Fatalf("ListPositions: %+v %v", list, err)
	}
	if pts, edited := store.PositionOf(list, "customer-service", nil); !edited || len(pts) != 2 {
		t.Fatalf("PositionOf: %v %v", pts, edited)
	}

	// Edited down to nothing is not the same as the catalog's defaults.
	seq = e.seq()
	if _, err := e.st.SetPosition(e.ctx, e.tenant.ID, "customer-service", nil, actor); err != nil {
		t.Fatal(err)
	}
	ch, _ = e.st.PolicyChangesSince(e.ctx, seq)
	if len(ch.SubAccounts) != 1 || !ch.SubAccounts[0].RoleEdited || len(ch.SubAccounts[0].RolePoints) != 0 {
		t.Fatalf("edited to nothing: %+v", ch.SubAccounts)
	}
	if got := store.EffectivePermissions(ch.SubAccounts[0], []string{"orders.sold"}); !slices.Equal(got, []string{"reports"}) {
		t.Fatalf("edited to nothing: permissions %v, want only the grant", got)
	}

	// Reset: back to the catalog, again through the policy.
	seq = e.seq()
	if err := e.st.ResetPosition(e.ctx, e.tenant.ID, "customer-service", actor); err != nil {
		t.Fatal(err)
	}
	ch, _ = e.st.PolicyChangesSince(e.ctx, seq)
	if len(ch.SubAccounts) != 1 || ch.SubAccounts[0].RoleEdited {
		t.Fatalf("after reset: %+v", ch.SubAccounts)
	}
	e.unchanged(cs, func() {
		wantErr(t, e.st.ResetPosition(e.ctx, e.tenant.ID, "customer-service", actor), store.ErrNotFound)
	})

	// Moving a sub-account to an edited position carries the store's points.
	if _, err := e.st.SetPosition(e.ctx, e.tenant.ID, "finance", []string{"reports"}, actor); err != nil {
		t.Fatal(err)
	}
	seq = e.seq()
	if _, err := e.st.SetRole(e.ctx, e.tenant.ID, ops.ID, "finance", []string{"orders.export"}, actor); err != nil {
		t.Fatal(err)
	}
	ch, _ = e.st.PolicyChangesSince(e.ctx, seq)
	if len(ch.SubAccounts) != 1 || !ch.SubAccounts[0].RoleEdited || !slices.Equal(store.EffectivePermissions(ch.SubAccounts[0], nil), []string{"orders.export", "reports"}) {
		t.Fatalf("moved to an edited position: %+v", ch.SubAccounts)
	}

	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "position."})
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action+" "+ev.Target+" "+ev.Detail["points"]+" ("+ev.Detail["before"]+")")
	}
	want := []string{"position.edit customer-service chat,refunds ()", "position.edit customer-service  (chat,refunds)",
		"position.reset customer-service  ()", "position.edit finance reports ()"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
	if n, _ := e.st.ListAudit(e.ctx, other.ID, store.AuditFilter{Action: "position."}); len(n) != 0 {
		t.Fatalf("the other store's records show %d position events", len(n))
	}
	if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
}

// Bad input changes nothing.
func testPositionBadInput(t *testing.T, e *env) {
	s := e.mustSub(e.tenant, "alice")
	for name, fn := range map[string]func() error{
		"no role": func() error {
			_, err := e.st.SetPosition(e.ctx, e.tenant.ID, "", []string{"chat"}, actor)
			return err
		},
		"long role": func() error {
			_, err := e.st.SetPosition(e.ctx, e.tenant.ID, strings.Repeat("r", 65), []string{"chat"}, actor)
			return err
		},
		"empty point": func() error {
			_, err := e.st.SetPosition(e.ctx, e.tenant.ID, "operations", []string{"chat", ""}, actor)
			return err
		},
		"long point": func() error {
			_, err := e.st.SetPosition(e.ctx, e.tenant.ID, "operations", []string{strings.Repeat("p", 65)}, actor)
			return err
		},
	} {
		e.unchanged(s, func() {
			if err := fn(); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("%s: %v, want ErrInvalid", name, err)
			}
		})
	}
	e.unchanged(s, func() {
		_, err := e.st.SetPosition(e.ctx, store.NewID(), "operations", []string{"chat"}, actor)
		wantErr(t, err, store.ErrNotFound)
	})
}

// Seed 002: names are unique per store and never reused, departed
// sub-accounts included ("name taken: look in departed staff").
func testPositionNamesNeverReused(t *testing.T, e *env) {
	s := e.protected(e.tenant, "小王", 1)
	if _, _, err := e.st.SetStatus(e.ctx, e.tenant.ID, s.ID, store.StatusDeparted, actor); err != nil {
		t.Fatal(err)
	}
	e.unchanged(s, func() {
		_, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "小王", Role: "finance", PasswordHash: "h"}, actor)
		wantErr(t, err, store.ErrDuplicate)
	})
	// The departed one keeps its name and can be restored.
	if back, _, err := e.st.SetStatus(e.ctx, e.tenant.ID, s.ID, store.StatusActive, actor); err != nil || back.Name != "小王" {
		t.Fatalf("restore: %+v %v", back, err)
	}
	// Another store may use the same name.
	Sub(t, e.st, store.NewSubAccount{TenantID: e.mustTenant("other").ID, Name: "小王"})
}

// `audit verify` covers the new events: a tampered position edit breaks
// the chain at its seq.
func testPositionAuditTamper(t *testing.T, e *env, db *sqlstore.DB, dropTrigger string) {
	if _, err := db.SetPosition(e.ctx, e.tenant.ID, "operations", []string{"reports"}, actor); err != nil {
		t.Fatal(err)
	}
	if err := db.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	evs, _ := db.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "position.edit"})
	if len(evs) != 1 {
		t.Fatalf("position events: %d", len(evs))
	}
	if _, err := db.SQL().ExecContext(e.ctx, dropTrigger); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(e.ctx, db.Rebind(`UPDATE audit SET detail = ? WHERE tenant_id = ? AND seq = ?`),
		`{"points":"orders.export,reports"}`, e.tenant.ID, evs[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := db.VerifyAudit(e.ctx, e.tenant.ID); err == nil {
		t.Fatal("a tampered position edit was not detected")
	}
}

// A temporary account is exempt from real-person verification: created
// with a deadline, it still gets no verification record (and so is never
// frozen for it); a permanent one created alike does.
func testTemporaryExemptFromVerification(t *testing.T, e *env) {
	deadline := e.now.Add(store.VerifyPeriod)
	temp := Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "promo", VerifyBy: deadline,
		Window: store.Window{NotAfter: e.now.Add(30 * 24 * time.Hour)}})
	if _, err := e.st.GetVerification(e.ctx, e.tenant.ID, temp.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a temporary account has a verification record: %v", err)
	}
	perm := Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "staff", VerifyBy: deadline})
	if v, err := e.st.GetVerification(e.ctx, e.tenant.ID, perm.ID); err != nil || !v.Deadline.Equal(deadline.Truncate(time.Microsecond)) {
		t.Fatalf("a permanent account's verification: %+v %v", v, err)
	}
}
