package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite"
)

// The snapshot file is written by Run's writer, never by a sync: a burst of
// policy changes, each synced at once, costs a few writes (at most one per
// saveEvery, plus the last one when Run ends), the file holds the latest
// snapshot afterwards, and a sync returns while a write is stuck.
func TestSnapshotWritesCoalesce(t *testing.T) {
	tests := []struct {
		name      string
		stuck     bool // the first write does not finish until the syncs are done
		changes   int
		saveEvery time.Duration
	}{
		{"burst of changes", false, 40, 300 * time.Millisecond},
		{"write stuck", true, 20, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), store.Options{SealKey: make([]byte, 32)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tn, err := st.CreateTenant(ctx, store.NewTenant{Name: "shop"}, actor)
			if err != nil {
				t.Fatal(err)
			}
			catalog, _ := config.DefaultCatalog()
			p := NewPolicy(st, catalog, slog.New(slog.DiscardHandler))
			file := filepath.Join(t.TempDir(), "snapshot.json")
			if err := p.PersistTo(file); err != nil {
				t.Fatal(err)
			}
			p.saveEvery = tc.saveEvery
			entered, release := make(chan struct{}, 1), make(chan struct{})
			if tc.stuck {
				p.saveFile = func(path string, s *Snapshot, syncedAt time.Time) error {
					select {
					case entered <- struct{}{}:
						<-release // only the first write is held
					default:
					}
					return saveSnapshot(path, s, syncedAt)
				}
			}
			runCtx, stop := context.WithCancel(ctx)
			stopped := make(chan error, 1)
			go func() { stopped <- p.Run(runCtx, time.Hour) }() // the poll never comes: only these syncs
			change := func(i int) {
				if _, err := st.CreateSubAccount(ctx, store.NewSubAccount{TenantID: tn.ID, Name: fmt.Sprintf("u%d", i), Role: "operations", PasswordHash: "x"}, actor); err != nil {
					t.Error(err)
				}
				seq := p.Snapshot().Seq
				if err := p.Sync(ctx); err != nil {
					t.Error(err)
				}
				if p.Snapshot().Seq == seq {
					t.Errorf("change %d did not move the policy's seq", i)
				}
			}
			began := time.Now()
			change(0)
			if tc.stuck {
				<-entered // the writer is inside its first write, and stays there
			}
			synced := make(chan struct{})
			go func() {
				defer close(synced)
				for i := 1; i < tc.changes; i++ {
					change(i) // returns although the writer is stuck: nothing waits on it
				}
			}()
			select {
			case <-synced:
			case <-time.After(30 * time.Second):
				t.Fatal("the syncs wait for the snapshot write")
			}
			if tc.stuck && p.saves.Load() != 0 {
				t.Fatalf("%d writes finished while the first was held", p.saves.Load())
			}
			close(release)
			elapsed := time.Since(began)
			stop()
			if err := <-stopped; err != nil {
				t.Fatalf("Run: %v", err)
			}
			saves := p.saves.Load()
			// One write per saveEvery at most, the first at once, and the last at the end.
			if limit := int64(elapsed/tc.saveEvery) + 2; saves > limit || saves < 1 {
				t.Fatalf("%d syncs in %v gave %d writes, want 1..%d", tc.changes, elapsed, saves, limit)
			}
			if tc.stuck && saves != 2 {
				t.Fatalf("%d writes, want 2: the held one and one for every sync made meanwhile", saves)
			}
			onDisk, _, err := loadSnapshot(file, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if onDisk.Seq != p.Snapshot().Seq || len(onDisk.subs) != tc.changes {
				t.Fatalf("file at seq %d with %d sub-accounts, want the latest: seq %d, %d", onDisk.Seq, len(onDisk.subs), p.Snapshot().Seq, tc.changes)
			}
			t.Logf("%d syncs in %v: %d snapshot writes", tc.changes, elapsed.Round(time.Millisecond), saves)
		})
	}
}
