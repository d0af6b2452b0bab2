package postgres

import (
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/storetest"
)

func TestVerificationConformancePostgres(t *testing.T) {
	open := opener(pgtest.Start(t))
	storetest.RunVerification(t, func(t *testing.T) store.Store { return open(t) })
}
