package proxy

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/devicegate/devicegate/store"
)

// heldSource answers with the seq it had when asked, but only once
// released: an answer held up in a partition, delivered after it healed.
type heldSource struct {
	seq     int64
	release chan struct{}
}

func (s *heldSource) PolicyChangesSince(ctx context.Context, _ int64) (store.PolicyChanges, error) {
	ch := store.PolicyChanges{Seq: s.seq} // read now, as a database does
	select {
	case <-s.release:
		return ch, nil
	case <-ctx.Done():
		return store.PolicyChanges{}, ctx.Err()
	}
}

// A policy is as fresh as the moment the store was asked, not as the
// moment its answer arrived: an answer read before a partition and
// delivered after it must not make revocations made meanwhile look
// applied (the proxy would serve high-risk paths on an old view).
func TestStalenessCountsFromTheQuestion(t *testing.T) {
	for _, tc := range []struct {
		name      string
		heldFor   time.Duration
		wantStale time.Duration
	}{
		{"prompt answer: fresh", 0, 0},
		{"answer held 10 s: 10 s old", 10 * time.Second, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := &heldSource{seq: 7, release: make(chan struct{})}
				p := NewPolicy(src, nil, slog.New(slog.DiscardHandler))
				done := make(chan error)
				go func() { done <- p.Sync(t.Context()) }()
				time.Sleep(tc.heldFor)
				close(src.release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if p.Snapshot().Seq != 7 {
					t.Fatalf("seq %d, want 7", p.Snapshot().Seq)
				}
				if got := p.Staleness(time.Now()); got != tc.wantStale {
					t.Fatalf("staleness right after the answer: %v, want %v", got, tc.wantStale)
				}
			})
		})
	}
}
