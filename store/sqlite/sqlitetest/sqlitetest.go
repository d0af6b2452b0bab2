// Package sqlitetest opens throwaway SQLite stores for the tests of the
// packages above the store (the store's own tests open theirs directly).
package sqlitetest

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite"
	"github.com/devicegate/devicegate/store/sqlstore"
)

// Open returns a fresh SQLite store in a temporary directory with a random
// seal key, closed when the test ends.
func Open(t testing.TB) *sqlstore.DB {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), store.Options{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
