package sqlite

import (
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

func TestOwnerCertConformance(t *testing.T) {
	storetest.RunOwnerCert(t, func(t *testing.T) store.Store { return open(t) })
}
