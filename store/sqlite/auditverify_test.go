package sqlite

import (
	"context"
	"sync"
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// VerifyAudit while events are appended: the events and the head are read
// from one consistent point, so a live chain never looks broken (it said
// "events after seq N are missing" when an append committed between its
// two reads).
func TestVerifyAuditDuringAppends(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	tn := storetest.Tenant(t, st, "shop")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < 1500; i++ {
			if _, err := st.AppendAudit(ctx, tn.ID, store.AuditEntry{Action: "test.append", Target: "x"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var verr error
	verified := 0
	for running := true; running && verr == nil; verified++ {
		select {
		case <-done:
			running = false
		default:
		}
		verr = st.VerifyAudit(ctx, tn.ID)
	}
	wg.Wait()
	if verr != nil {
		t.Fatalf("verify %d during appends: %v", verified, verr)
	}
}
