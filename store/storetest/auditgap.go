package storetest

import (
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// testAuditGaps: a proxy's gap entry (events it could not write) goes
// through the normal chain, is found again by store.AuditGaps (paged past
// one ListAudit page), belongs to its store only, and is described by
// `audit verify`.
func testAuditGaps(t *testing.T, e *env) {
	if gaps, err := store.AuditGaps(e.ctx, e.st, e.tenant.ID); err != nil || len(gaps) != 0 {
		t.Fatalf("a store without losses has gaps %+v: %v", gaps, err)
	}
	other := e.mustTenant("other")
	from := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	to := from.Add(90 * time.Second)
	batch := []store.AuditRecord{
		{TenantID: e.tenant.ID, Entry: store.AuditEntry{Action: "proxy.allow", Target: "shop:alice"}},
		{TenantID: e.tenant.ID, Entry: store.AuditGap{Events: 37, From: from, To: to}.Entry()},
		{TenantID: other.ID, Entry: store.AuditGap{Events: 5, From: from, To: from}.Entry()},
	}
	if err := e.st.AppendAuditBatch(e.ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{e.tenant.ID, other.ID} {
		if err := e.st.VerifyAudit(e.ctx, tn); err != nil {
			t.Fatalf("chain with a gap entry: %v", err)
		}
	}
	gaps, err := store.AuditGaps(e.ctx, e.st, e.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 || gaps[0].Events != 37 || !gaps[0].From.Equal(from) || !gaps[0].To.Equal(to) || gaps[0].Seq == 0 {
		t.Fatalf("gaps %+v", gaps)
	}
	if got, want := store.DescribeAuditGaps(gaps), "1 gap: 37 events lost between 2026-12-02T10:00:00Z and 2026-12-02T10:01:30Z"; got != want {
		t.Fatalf("described as %q, want %q", got, want)
	}
	if og, err := store.AuditGaps(e.ctx, e.st, other.ID); err != nil || len(og) != 1 || og[0].Events != 5 {
		t.Fatalf("the other store's gaps %+v: %v", og, err)
	}

	// More gap entries than one page of ListAudit.
	batch = batch[:0]
	for range 1100 {
		batch = append(batch, store.AuditRecord{TenantID: e.tenant.ID, Entry: store.AuditGap{Events: 1, From: to, To: to}.Entry()})
	}
	if err := e.st.AppendAuditBatch(e.ctx, batch); err != nil {
		t.Fatal(err)
	}
	if gaps, err = store.AuditGaps(e.ctx, e.st, e.tenant.ID); err != nil || len(gaps) != 1101 {
		t.Fatalf("%d gaps after paging, want 1101: %v", len(gaps), err)
	}
	if got, want := store.DescribeAuditGaps(gaps), "1101 gaps: 1137 events lost between 2026-12-02T10:00:00Z and 2026-12-02T10:01:30Z"; got != want {
		t.Fatalf("described as %q, want %q", got, want)
	}
}
