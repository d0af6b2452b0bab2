package proxy

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
)

// At shutdown the auditor writes every event queued before its context
// ended and counts every later one as dropped: under concurrent recording,
// written + dropped is exactly what was recorded. A store that does not
// answer holds the shutdown for drainFor at most, and the unwritten events
// are counted.
func TestAuditorDrainsOnShutdown(t *testing.T) {
	g := Grant{Principal: identity.Principal{TenantID: "t1", DeviceID: "d1"}, SubName: "t1:alice"}
	tests := []struct {
		name        string
		queued      int  // recorded before Run starts (its context already ended)
		concurrent  bool // recorders keep going while the context ends
		blocked     bool // the store never answers
		wantWritten bool // every queued event written
	}{
		{"queue written at shutdown", 3000, false, false, true},
		{"recording while shutting down", 0, true, false, false},
		{"store not answering", 500, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &flakySink{}
			if tc.blocked {
				sink.set(false, make(chan struct{})) // never released
			}
			// Room for everything: only the shutdown may drop.
			a := NewAuditor(sink, 1<<18, slog.New(slog.DiscardHandler))
			a.drainFor = 200 * time.Millisecond
			for range tc.queued {
				a.Record("10.0.0.1", g, "orders.sold", "/orders/sold", ReasonAllowed)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			stop := make(chan struct{}) // closed when Run returned
			var recorded sync.WaitGroup
			counts := make([]int, 4)
			if tc.concurrent {
				go func() { done <- a.Run(ctx) }()
				for i := range counts {
					recorded.Go(func() {
						for counts[i] < 40_000 {
							select {
							case <-stop:
								return
							default:
							}
							a.Record("10.0.0.1", g, "orders.sold", "/orders/sold", ReasonAllowed)
							counts[i]++
							if counts[i] == 1000 && i == 0 {
								cancel() // the shutdown comes in the middle of the recording
							}
						}
					})
				}
			} else {
				cancel()
				go func() { done <- a.Run(ctx) }()
			}
			began := time.Now()
			var err error
			select {
			case err = <-done:
				close(stop)
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
			stopped := time.Since(began)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			recorded.Wait()
			total := tc.queued
			for _, c := range counts {
				total += c
			}
			decisions, _ := sink.tally()
			written := decisions["t1"]
			if written+int(a.Dropped()) != total {
				t.Fatalf("%d recorded, %d written + %d dropped", total, written, a.Dropped())
			}
			if tc.wantWritten && (written != total || a.Dropped() != 0) {
				t.Fatalf("%d of %d queued events written, %d dropped", written, total, a.Dropped())
			}
			if tc.blocked && stopped > 5*time.Second {
				t.Fatalf("shutdown held %v by a store that does not answer (drainFor 200ms)", stopped)
			}
			// After Run returned, a decision is counted as dropped at once.
			before := a.Dropped()
			a.Record("10.0.0.1", g, "orders.sold", "/orders/sold", ReasonAllowed)
			if a.Dropped() != before+1 || len(a.events) != 0 {
				t.Fatalf("a decision after the shutdown: dropped %d -> %d, %d queued", before, a.Dropped(), len(a.events))
			}
			t.Logf("%d recorded, %d written, %d dropped, stopped in %v", total, written, a.Dropped(), stopped.Round(time.Millisecond))
		})
	}
}
