package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// RunOwnerCert runs the owner's-own-certificate part of the suite (a
// top-level test of its own, so `go test -run 'Owner'` selects it).
func RunOwnerCert(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"OwnerAccountHidden", testOwnerAccountHidden},
		{"OwnerAccountOnceUnderRace", testOwnerAccountOnce},
		{"OwnerQuotaAndRevocation", testOwnerQuotaAndRevocation},
		{"OwnerAccountOnlyQuotaChanges", testOwnerAccountOnlyQuota},
		{"OwnerCertRequiredSetting", testOwnerCertRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t, open(t)))
		})
	}
}

func (e *env) ownerAccount(tn store.Tenant) store.SubAccount {
	e.t.Helper()
	o, err := e.st.EnsureOwnerAccount(e.ctx, tn.ID, actor)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// testOwnerAccountHidden: the owner sub-account is made on first use
// (audited once), is its store's alone, and never shows up as staff: not
// listed, not found by name, its name not takeable.
func testOwnerAccountHidden(t *testing.T, e *env) {
	if _, err := e.st.OwnerAccount(e.ctx, e.tenant.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("owner account before first use: %v", err)
	}
	staff := e.mustSub(e.tenant, "alice")
	o := e.ownerAccount(e.tenant)
	if !o.Owner || o.Name != store.OwnerSubName || o.FullName() != "shop" || o.Status != store.StatusActive ||
		!o.PhoneEnabled || !o.Protection.Enabled || o.Protection.MaxDevices != 1 {
		t.Fatalf("owner account %+v", o)
	}
	if again := e.ownerAccount(e.tenant); again.ID != o.ID {
		t.Fatalf("second call made another owner account %s != %s", again.ID, o.ID)
	}
	if got, err := e.st.OwnerAccount(e.ctx, e.tenant.ID); err != nil || got.ID != o.ID {
		t.Fatalf("OwnerAccount: %v %v", got.ID, err)
	}
	n := 0
	for _, ev := range mustAudit(t, e) {
		if ev.Action == "owner.account" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d owner.account events, want 1", n)
	}
	subs, err := e.st.ListSubAccounts(e.ctx, e.tenant.ID, store.SubAccountFilter{})
	if err != nil || len(subs) != 1 || subs[0].ID != staff.ID {
		t.Fatalf("ListSubAccounts lists %+v (%v), want only alice", subs, err)
	}
	if _, err := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, store.OwnerSubName); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("owner account found by name: %v", err)
	}
	if _, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: store.OwnerSubName, Role: "other", PasswordHash: "x"}, actor); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a sub-account took the owner's name: %v", err)
	}
	other := e.mustTenant("other")
	if _, err := e.st.OwnerAccount(e.ctx, other.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another store sees an owner account: %v", err)
	}
	if oo := e.ownerAccount(other); oo.ID == o.ID || oo.TenantID != other.ID {
		t.Fatalf("other store's owner account %+v", oo)
	}
	if _, err := e.st.GetSubAccount(e.ctx, other.ID, o.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("owner account read through another store: %v", err)
	}
}

// testOwnerAccountOnce: first uses racing make one owner account.
func testOwnerAccountOnce(t *testing.T, e *env) {
	ids := make([]string, 8)
	for i, err := range race(8, func(i int) error {
		o, err := e.st.EnsureOwnerAccount(e.ctx, e.tenant.ID, actor)
		ids[i] = o.ID
		return err
	}) {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("racing first uses made different owner accounts: %v", ids)
		}
	}
}

// testOwnerQuotaAndRevocation: the owner's computers count against N like
// a sub-account's, and a revocation reaches the feed and the CRL list.
func testOwnerQuotaAndRevocation(t *testing.T, e *env) {
	o := e.ownerAccount(e.tenant)
	d := e.issue(o)
	if _, _, err := e.st.IssueDevice(e.ctx, e.issueReq(o), actor); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("second owner computer with N=1: %v", err)
	}
	if _, err := e.st.SetProtection(e.ctx, e.tenant.ID, o.ID, store.Protection{Enabled: true, MaxDevices: 2}, actor); err != nil {
		t.Fatal(err)
	}
	d2 := e.issue(o)
	if _, err := e.st.SetProtection(e.ctx, e.tenant.ID, o.ID, store.Protection{Enabled: true, MaxDevices: 1}, actor); err == nil {
		t.Fatal("N lowered below the owner's active computers")
	}
	for _, n := range []int{0, store.MaxDevicesLimit + 1} {
		e.unchanged(o, func() {
			if _, err := e.st.SetProtection(e.ctx, e.tenant.ID, o.ID, store.Protection{Enabled: true, MaxDevices: n}, actor); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("N=%d: %v", n, err)
			}
		})
	}
	before := e.seq()
	rev, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d.ID, store.ReasonKeyCompromise, actor)
	if err != nil || rev.SubID != o.ID || rev.Serial != d.Serial {
		t.Fatalf("revoke owner computer: %+v %v", rev, err)
	}
	revs, err := e.st.RevocationsSince(e.ctx, before, 10)
	if err != nil || len(revs) != 1 || revs[0].Serial != d.Serial {
		t.Fatalf("revocation feed %+v %v", revs, err)
	}
	crl, err := e.st.RevocationsForCRL(e.ctx, e.now)
	found := false
	for _, r := range crl {
		found = found || r.Serial == d.Serial
	}
	if err != nil || !found {
		t.Fatalf("owner certificate not on the CRL list (%v)", err)
	}
	if got := e.active(o); got != 1 {
		t.Fatalf("%d active owner computers after the revocation, want 1 (%s)", got, d2.ID)
	}
	// Another store's owner cannot revoke this owner's computer.
	other := e.mustTenant("other")
	e.unchanged(o, func() {
		if _, err := e.st.RevokeDevice(e.ctx, other.ID, d2.ID, store.ReasonKeyCompromise, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked through another store: %v", err)
		}
	})
}

// testOwnerAccountOnlyQuota: the owner sub-account has a quota and nothing
// else of a sub-account: status, position, phone, window and protection
// off are refused and change nothing.
func testOwnerAccountOnlyQuota(t *testing.T, e *env) {
	o := e.ownerAccount(e.tenant)
	e.issue(o)
	for name, call := range map[string]func() error{
		"status": func() error {
			_, _, err := e.st.SetStatus(e.ctx, e.tenant.ID, o.ID, store.StatusDeparted, actor)
			return err
		},
		"role": func() error {
			_, err := e.st.SetRole(e.ctx, e.tenant.ID, o.ID, "other", nil, actor)
			return err
		},
		"phone": func() error {
			_, err := e.st.EnablePhone(e.ctx, e.tenant.ID, o.ID, nil, actor)
			return err
		},
		"window": func() error {
			_, err := e.st.SetValidity(e.ctx, e.tenant.ID, o.ID, store.Window{NotAfter: e.now.Add(time.Hour)}, actor)
			return err
		},
		"password": func() error { return e.st.SetPassword(e.ctx, e.tenant.ID, o.ID, "hash", actor) },
		"protection off": func() error {
			_, err := e.st.SetProtection(e.ctx, e.tenant.ID, o.ID, store.Protection{}, actor)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			e.unchanged(o, func() {
				if err := call(); err == nil {
					t.Fatalf("%s of the owner account accepted", name)
				}
			})
		})
	}
	if got, _ := e.st.OwnerAccount(e.ctx, e.tenant.ID); got.Status != store.StatusActive || got.PasswordHash != "" {
		t.Fatalf("owner account changed: %+v", got)
	}
}

// testOwnerCertRequired: the requirement is turned on only while the
// owner has an active computer, off always; each change is audited in the
// chain; another store's setting never moves.
func testOwnerCertRequired(t *testing.T, e *env) {
	other := e.mustTenant("other")
	otherOwner := e.ownerAccount(other)
	e.issue(otherOwner) // another store's owner computer does not count here
	e.unchanged(otherOwner, func() {
		if _, err := e.st.SetOwnerCertRequired(e.ctx, e.tenant.ID, true, e.now, actor); !errors.Is(err, store.ErrNotEligible) {
			t.Fatalf("turned on without an owner account: %v", err)
		}
	})
	o := e.ownerAccount(e.tenant)
	d := e.issue(o)
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d.ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	e.unchanged(o, func() {
		if _, err := e.st.SetOwnerCertRequired(e.ctx, e.tenant.ID, true, e.now, actor); !errors.Is(err, store.ErrNotEligible) {
			t.Fatalf("turned on with a revoked computer only: %v", err)
		}
	})
	d = e.issue(o)
	e.unchanged(o, func() {
		if _, err := e.st.SetOwnerCertRequired(e.ctx, e.tenant.ID, true, d.ExpiresAt, actor); !errors.Is(err, store.ErrNotEligible) {
			t.Fatalf("turned on with an expired computer only: %v", err)
		}
	})
	tn, err := e.st.SetOwnerCertRequired(e.ctx, e.tenant.ID, true, e.now, actor)
	if err != nil || !tn.OwnerCertRequired {
		t.Fatalf("turn on: %+v %v", tn, err)
	}
	if got, _ := e.st.GetTenantByName(e.ctx, "shop"); !got.OwnerCertRequired {
		t.Fatal("setting not stored")
	}
	if got, _ := e.st.GetTenant(e.ctx, other.ID); got.OwnerCertRequired {
		t.Fatal("another store's setting moved")
	}
	evs := mustAudit(t, e)
	last := evs[len(evs)-1]
	if last.Action != "owner.cert_required" || last.Target != "shop" || last.Detail["from"] != "false" || last.Detail["to"] != "true" ||
		last.Detail["owner_devices"] != "1" || last.Actor != actor {
		t.Fatalf("audit event %+v", last)
	}
	// Off works even with no computer left (the recovery path).
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d.ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	if tn, err := e.st.SetOwnerCertRequired(e.ctx, e.tenant.ID, false, e.now, actor); err != nil || tn.OwnerCertRequired {
		t.Fatalf("turn off: %+v %v", tn, err)
	}
	if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SetOwnerCertRequired(e.ctx, store.NewID(), false, e.now, actor); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown store: %v", err)
	}
}
