package sqlite

import (
	"testing"

	"github.com/devicegate/devicegate/store/storetest"
)

// TestTemporaryAndPositionConformance: temporary sub-accounts, positions
// per store and never-reused names on SQLite.
func TestTemporaryAndPositionConformance(t *testing.T) {
	storetest.RunLifecycle(t, open, `DROP TRIGGER audit_no_update`)
}
