package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlstore"
	"github.com/devicegate/devicegate/store/storetest"
)

func open(t *testing.T) *sqlstore.DB {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), store.Options{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestBackendInternals(t *testing.T) {
	storetest.RunInternals(t, open(t), `DROP TRIGGER audit_no_update`)
}

func TestOpenRefusesMissingKey(t *testing.T) {
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "db"), store.Options{}); err == nil || !strings.Contains(err.Error(), "seal key") {
		t.Fatalf("opened without a seal key: %v", err)
	}
}

// TestCommitsSurvivePowerLoss: every connection of the store syncs the WAL
// at each commit (synchronous=FULL). With NORMAL, WAL mode keeps a commit
// through a process crash but may lose it to a power loss before the next
// checkpoint: an issuance or revocation already answered would be gone.
func TestCommitsSurvivePowerLoss(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	conns := make([]*sql.Conn, 3) // several pooled connections, each with its pragmas
	for i := range conns {
		c, err := st.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		var mode, journal string
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
			t.Fatal(err)
		}
		if mode != "2" || journal != "wal" { // 2 = FULL
			t.Fatalf("connection %d: synchronous=%s journal_mode=%s, want 2 (FULL) and wal", i, mode, journal)
		}
	}
}
