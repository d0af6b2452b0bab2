package ca

import (
	"testing"

	"github.com/devicegate/devicegate/store"
)

// TestVerifyFrozenInPolicyFeed: the feed tells proxies that a sub-account
// is frozen for not verifying, and only then.
func TestVerifyFrozenInPolicyFeed(t *testing.T) {
	for _, frozen := range []bool{true, false} {
		a := store.SubAccount{ID: "s", TenantID: "t", TenantName: "shop", Name: "a", Status: store.StatusActive, VerifyFrozen: frozen}
		if got := policySubAccount(a).NotVerified; got != frozen {
			t.Fatalf("VerifyFrozen %v sent as %v", frozen, got)
		}
	}
}
