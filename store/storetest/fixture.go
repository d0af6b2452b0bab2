package storetest

import (
	"context"
	"testing"

	"github.com/devicegate/devicegate/store"
)

// The setup most tests start from, shared so that it is written once:
// a tenant, a sub-account, phone verification and certificate protection
// with N devices. Every helper fails the test on an error.

// Actor is who the setup's changes are audited as.
var Actor = store.Actor{Kind: "cli", Name: "test"}

// TOTPSecret is the phone secret Protect enables (a test that checks that
// secrets never leave the store looks for it).
const TOTPSecret = "JBSWY3DPEHPK3PXP"

// Tenant creates the store (tenant) name.
func Tenant(t testing.TB, st store.Store, name string) store.Tenant {
	t.Helper()
	tn, err := st.CreateTenant(context.Background(), store.NewTenant{Name: name}, Actor)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// Sub creates the sub-account ns; the role defaults to "operations" and
// the password hash to a placeholder nobody can log in with.
func Sub(t testing.TB, st store.Store, ns store.NewSubAccount) store.SubAccount {
	t.Helper()
	if ns.Role == "" {
		ns.Role = "operations"
	}
	if ns.PasswordHash == "" {
		ns.PasswordHash = "x"
	}
	s, err := st.CreateSubAccount(context.Background(), ns, Actor)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Protect enables phone verification (TOTPSecret) and certificate
// protection with n devices on s, and returns it as stored.
func Protect(t testing.TB, st store.Store, s store.SubAccount, n int) store.SubAccount {
	t.Helper()
	ctx := context.Background()
	if _, err := st.EnablePhone(ctx, s.TenantID, s.ID, []byte(TOTPSecret), Actor); err != nil {
		t.Fatal(err)
	}
	s, err := st.SetProtection(ctx, s.TenantID, s.ID, store.Protection{Enabled: true, MaxDevices: n}, Actor)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Protected creates the sub-account name of tn ("operations") protected
// with n devices.
func Protected(t testing.TB, st store.Store, tn store.Tenant, name string, n int) store.SubAccount {
	t.Helper()
	return Protect(t, st, Sub(t, st, store.NewSubAccount{TenantID: tn.ID, Name: name}), n)
}
