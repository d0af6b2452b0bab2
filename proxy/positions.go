package proxy

import (
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/store"
)

// permissionsOf is what a sub-account may use: its store's own points of
// its position when the owner edited it (positions per store, carried by
// the policy), else the catalog's defaults, plus its supplementary grants.
func permissionsOf(a store.SubAccount, catalog *config.Catalog) []string {
	var defaults []string
	if r, ok := catalog.Role(a.Role); ok {
		defaults = r.Permissions
	}
	return store.EffectivePermissions(a, defaults)
}
