package postgres

import (
	"testing"

	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestTemporaryAndPositionConformance: temporary sub-accounts, positions
// per store and never-reused names on PostgreSQL.
func TestTemporaryAndPositionConformance(t *testing.T) {
	storetest.RunLifecycle(t, opener(pgtest.Start(t)), `DROP TRIGGER audit_no_update ON audit`)
}
