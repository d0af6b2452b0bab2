package ca

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// A temporary sub-account's certificates never outlive its window, by the
// CA's injected clock: issuance and renewal are capped at the window's
// end, refused outside the window, and an extension lets a renewal reach
// the new end.
func TestTemporaryCertificatesEndWithWindow(t *testing.T) {
	f := newFixture(t)
	clock := f.atomicClock()
	start := f.now.Truncate(time.Second)
	end := start.Add(19 * 24 * time.Hour)
	if _, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, store.Window{NotBefore: start.Add(-time.Hour), NotAfter: end}, testActor); err != nil {
		t.Fatal(err)
	}
	sub, _ := f.store.GetSubAccount(f.ctx, f.tenant.ID, f.alice.ID)
	if !sub.Temporary() {
		t.Fatal("a sub-account with a window end is not temporary")
	}
	is := f.issue(sub)
	if !is.Chain[0].NotAfter.Equal(end) {
		t.Fatalf("NotAfter %v, want the window's end %v", is.Chain[0].NotAfter, end)
	}

	// Renewing (within 30 days of the end) stays capped; after the owner
	// extends the window, the renewal reaches the new end.
	clock.Set(end.Add(-5 * 24 * time.Hour))
	ren, err := f.ca.Renew(f.ctx, is.Chain[0], newCSR(t, newKey(t), nil))
	if err != nil || !ren.Chain[0].NotAfter.Equal(end) {
		t.Fatalf("renewal: %v %v, want NotAfter %v", ren, err, end)
	}
	later := end.Add(10 * 24 * time.Hour)
	if _, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, store.Window{NotBefore: start.Add(-time.Hour), NotAfter: later}, testActor); err != nil {
		t.Fatal(err)
	}
	clock.Set(end.Add(-24 * time.Hour))
	ren2, err := f.ca.Renew(f.ctx, ren.Chain[0], newCSR(t, newKey(t), nil))
	if err != nil || !ren2.Chain[0].NotAfter.Equal(later) {
		t.Fatalf("renewal after the extension: %v, NotAfter want %v", err, later)
	}

	// Outside the window nothing is issued or renewed, and nothing changes.
	for _, tc := range []struct {
		name   string
		at     time.Time
		window store.Window // zero: unchanged
	}{
		{"at the end", later, store.Window{}},
		{"after the end", later.Add(time.Hour), store.Window{}},
		// (The clock only moves forward here: tickets are checked against the store's.)
		{"before the start", later.Add(time.Hour), store.Window{NotBefore: later.Add(2 * time.Hour), NotAfter: later.Add(48 * time.Hour)}},
	} {
		clock.Set(tc.at)
		if !tc.window.NotAfter.IsZero() {
			if _, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, tc.window, testActor); err != nil {
				t.Fatal(err)
			}
		}
		before := f.counts(sub)
		_, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(sub), CSR: newCSR(t, newKey(t), nil), Label: "pc"})
		var ne *store.NotEligibleError
		if !errors.As(err, &ne) || ne.Reason != "outside_validity_window" {
			t.Fatalf("%s: issue %v, want outside_validity_window", tc.name, err)
		}
		e := Explain(err)
		if e.Code != "outside_window" || !strings.Contains(e.Message, "validity period") || !strings.Contains(e.MessageZH, "不在有效期内") {
			t.Fatalf("%s: explained as %+v", tc.name, e)
		}
		if after := f.counts(sub); after.devices != before.devices || after.audit != before.audit+1 { // +1: the ticket's creation
			t.Fatalf("%s: a refused issuance changed the store: %+v -> %+v", tc.name, before, after)
		}
	}
}
