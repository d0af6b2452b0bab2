package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestAuditHeadOfTwoWritersPostgres: a process appends to a store's audit
// chain from the head it wrote last, in one statement, when that head is
// still the store's. Two processes (two CA nodes, or a CA and a proxy)
// that take turns find the head moved by the other every time: each
// append must then read the head, and the chain stays whole, one event
// after the other, whatever the batch sizes, also when both write at once.
func TestAuditHeadOfTwoWritersPostgres(t *testing.T) {
	_, open := pgDatabase(t)
	ctx := context.Background()
	var nodes []store.Store
	for range 2 {
		st := open()
		defer st.Close()
		nodes = append(nodes, st)
	}
	tn := storetest.Tenant(t, nodes[0], "shop")
	before, err := nodes[0].ListAudit(ctx, tn.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(node, i int) store.AuditEntry {
		return store.AuditEntry{Time: time.Now(), Actor: store.Actor{Kind: "proxy", Name: fmt.Sprintf("node%d", node)},
			Action: "proxy.allow", Target: fmt.Sprint(i), Outcome: "ok"}
	}
	want := len(before)
	for i := range 12 {
		node := i % 2
		if i%3 == 2 { // a batch of three
			var rs []store.AuditRecord
			for j := range 3 {
				rs = append(rs, store.AuditRecord{TenantID: tn.ID, Entry: entry(node, 10*i+j)})
			}
			if err := nodes[node].AppendAuditBatch(ctx, rs); err != nil {
				t.Fatalf("node %d, batch %d: %v", node, i, err)
			}
			want += 3
			continue
		}
		// Twice in a row from the same node: the second append starts from
		// the head the first wrote.
		for j := range 2 {
			if _, err := nodes[node].AppendAudit(ctx, tn.ID, entry(node, 10*i+j)); err != nil {
				t.Fatalf("node %d, append %d: %v", node, i, err)
			}
			want++
		}
	}
	// Both at once: an append that waited for the other's head lock finds
	// the head moved when it gets the lock, and reads the moved one.
	errs := make(chan error, 2)
	for node := range 2 {
		go func() {
			for i := range 20 {
				if _, err := nodes[node].AppendAudit(ctx, tn.ID, entry(node, 1000+i)); err != nil {
					errs <- fmt.Errorf("node %d, concurrent append %d: %w", node, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want += 40
	for n, st := range nodes {
		if err := st.VerifyAudit(ctx, tn.ID); err != nil {
			t.Fatalf("node %d verifies: %v", n, err)
		}
	}
	evs, err := nodes[1].ListAudit(ctx, tn.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: the chain has a gap or a fork", i, e.Seq)
		}
	}
}
