package ca

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestRedeliverAfterLostAnswer: a client whose answer was lost (the CA
// died after the store recorded the device) sends the same request again
// and gets the identical certificate: same device, serial and DER, no new
// slot, no new revocation, audited device.redelivered.
func TestRedeliverAfterLostAnswer(t *testing.T) {
	f := newFixture(t)
	code, key := f.ticket(f.alice), newKey(t)
	req := IssueRequest{Code: code, CSR: newCSR(t, key, nil), Label: "pc"}
	first, err := f.ca.Issue(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	before := f.counts(f.alice)
	seq, _ := f.store.CurrentSeq(f.ctx)
	f.now = f.now.Add(2 * time.Minute)
	again, err := f.ca.Issue(f.ctx, req)
	if err != nil {
		t.Fatalf("same code, same CSR: %v", err)
	}
	if !again.Redelivered || again.Device.ID != first.Device.ID || again.Device.Serial != first.Device.Serial ||
		!bytes.Equal(again.Chain[0].Raw, first.Chain[0].Raw) || !again.Chain[1].Equal(first.Chain[1]) {
		t.Fatal("the re-delivered certificate is not the one issued")
	}
	if again.Installed != 1 || again.Limit != 2 {
		t.Fatalf("installed %d/%d, want 1/2", again.Installed, again.Limit)
	}
	after := f.counts(f.alice)
	seq2, _ := f.store.CurrentSeq(f.ctx)
	if after.devices != before.devices || after.audit != before.audit+1 || seq2 != seq {
		t.Fatalf("re-delivery changed the store: %+v -> %+v, seq %d -> %d", before, after, seq, seq2)
	}
	evs, _ := f.store.ListAudit(f.ctx, f.tenant.ID, store.AuditFilter{})
	if last := evs[len(evs)-1]; last.Action != "device.redelivered" {
		t.Fatalf("last audit event %q", last.Action)
	}
	// The same key with a new code of the same sub-account: re-delivered too.
	again2, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, key, nil)})
	if err != nil || again2.Device.ID != first.Device.ID || !bytes.Equal(again2.Chain[0].Raw, first.Chain[0].Raw) {
		t.Fatalf("same key, new code: %v", err)
	}
	// And when the quota is full (N=1): the key is checked before the quota.
	bob := f.protectedSub("bob", 1)
	bkey := newKey(t)
	b1, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(bob), CSR: newCSR(t, bkey, nil)})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(bob), CSR: newCSR(t, bkey, nil)})
	if err != nil || b2.Device.Serial != b1.Device.Serial {
		t.Fatalf("full quota, same key: %v", err)
	}
	// The portal path (session, no code): likewise.
	p, err := f.ca.Issue(f.ctx, IssueRequest{TenantID: f.tenant.ID, SubID: bob.ID, CSR: newCSR(t, bkey, nil)})
	if err != nil || p.Device.Serial != b1.Device.Serial {
		t.Fatalf("session, same key: %v", err)
	}
}

// TestRedeliverRefusals: everything but the lost answer keeps its error
// and changes nothing.
func TestRedeliverRefusals(t *testing.T) {
	f := newFixture(t)
	code, key := f.ticket(f.alice), newKey(t)
	first, err := f.ca.Issue(f.ctx, IssueRequest{Code: code, CSR: newCSR(t, key, nil)})
	if err != nil {
		t.Fatal(err)
	}
	otherStore := storetest.Tenant(t, f.store, "other")
	other := f.subIn(otherStore, "eve", 2)
	carol := f.protectedSub("carol", 2)
	refused := func(name string, r IssueRequest, want error) {
		t.Helper()
		before := f.counts(f.alice)
		is, err := f.ca.Issue(f.ctx, r)
		if !errors.Is(err, want) || is != nil {
			t.Fatalf("%s: got %v, want %v", name, err, want)
		}
		if after := f.counts(f.alice); after != before {
			t.Fatalf("%s changed alice's devices or audit: %+v -> %+v", name, before, after)
		}
	}
	// The used code without the key: a CSR of another key, a tampered CSR.
	refused("used code, other key", IssueRequest{Code: code, CSR: newCSR(t, newKey(t), nil)}, store.ErrTicketUsed)
	refused("used code, tampered CSR", IssueRequest{Code: code, CSR: tamperCSR(t, newCSR(t, key, nil))}, store.ErrTicketUsed)
	// The key with a code of another sub-account or another store: the
	// key is in use, alice's device is not handed to them.
	refused("carol's code, alice's key", IssueRequest{Code: f.ticket(carol), CSR: newCSR(t, key, nil)}, store.ErrKeyInUse)
	refused("other store's code, alice's key", IssueRequest{Code: f.ticket(other), CSR: newCSR(t, key, nil)}, store.ErrKeyInUse)
	refused("carol's session, alice's key", IssueRequest{TenantID: f.tenant.ID, SubID: carol.ID, CSR: newCSR(t, key, nil)}, store.ErrKeyInUse)
	// Past the ticket TTL: no longer.
	saved := f.now
	f.now = f.now.Add(31 * time.Minute)
	refused("after the ticket TTL", IssueRequest{Code: code, CSR: newCSR(t, key, nil)}, store.ErrTicketUsed)
	f.now = saved
	// Seen at a proxy: the client has it; no re-delivery.
	if err := f.store.TouchDevice(f.ctx, f.tenant.ID, first.Device.ID, f.now, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	refused("seen at a proxy, same code", IssueRequest{Code: code, CSR: newCSR(t, key, nil)}, store.ErrTicketUsed)
	refused("seen at a proxy, new code", IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, key, nil)}, store.ErrKeyInUse)
	// Revoked: not re-delivered.
	code2, key2 := f.ticket(f.alice), newKey(t)
	d2, err := f.ca.Issue(f.ctx, IssueRequest{Code: code2, CSR: newCSR(t, key2, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, d2.Device.ID, store.ReasonUnspecified, testActor); err != nil {
		t.Fatal(err)
	}
	refused("revoked", IssueRequest{Code: code2, CSR: newCSR(t, key2, nil)}, store.ErrTicketUsed)
}
