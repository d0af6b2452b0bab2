package sqlite

import (
	"context"
	"crypto/rand"
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
