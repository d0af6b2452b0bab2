package postgres

import (
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/storetest"
)

func TestOwnerCertConformancePostgres(t *testing.T) {
	open := opener(pgtest.Start(t))
	storetest.RunOwnerCert(t, func(t *testing.T) store.Store { return open(t) })
}
