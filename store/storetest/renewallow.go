package storetest

import (
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// testAllowEarlyRenewal: the owner's permission for one early renewal is set
// on an active device of the tenant only, audited in the chain with its end,
// and used up by the next renewal. Every refusal changes nothing.
func testAllowEarlyRenewal(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 2)
	d := e.issue(s)
	if !d.RenewAllowedUntil.IsZero() {
		t.Fatalf("a new device is allowed an early renewal until %v", d.RenewAllowedUntil)
	}
	until := time.Now().Add(7 * 24 * time.Hour).UTC().Truncate(time.Second)
	got, err := e.st.AllowEarlyRenewal(e.ctx, e.tenant.ID, d.ID, until, actor)
	if err != nil || !got.RenewAllowedUntil.Equal(until) {
		t.Fatalf("allow: %+v %v", got.RenewAllowedUntil, err)
	}
	if stored, _ := e.st.GetDevice(e.ctx, e.tenant.ID, d.ID); !stored.RenewAllowedUntil.Equal(until) {
		t.Fatalf("stored permission %v, want %v", stored.RenewAllowedUntil, until)
	}
	evs := mustAudit(t, e)
	last := evs[len(evs)-1]
	if last.Action != "device.renew_allowed" || last.Target != s.FullName() || last.Detail["device"] != d.ID ||
		last.Detail["until"] != until.Format(time.RFC3339) || last.Actor != actor {
		t.Fatalf("audit event %+v", last)
	}
	if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatalf("chain after allow: %v", err)
	}

	// Another store's device, unknown ids, bad ends and inactive devices:
	// refused, nothing changes (in either store).
	other := e.mustTenant("other")
	otherSub := e.protected(other, "bob", 1)
	otherDev := e.issue(otherSub)
	for _, tc := range []struct {
		name             string
		tenantID, device string
		until            time.Time
		want             error
	}{
		{"other store's device", e.tenant.ID, otherDev.ID, until, store.ErrNotFound},
		{"own device via other store", other.ID, d.ID, until, store.ErrNotFound},
		{"unknown device", e.tenant.ID, store.NewID(), until, store.ErrNotFound},
		{"no device", e.tenant.ID, "", until, store.ErrInvalid},
		{"zero end", e.tenant.ID, d.ID, time.Time{}, store.ErrInvalid},
		{"end in the past", e.tenant.ID, d.ID, time.Now().Add(-time.Minute), store.ErrInvalid},
		{"end too far", e.tenant.ID, d.ID, time.Now().Add(store.MaxRenewAllowance + time.Hour), store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.unchanged(s, func() {
				e.unchanged(otherSub, func() {
					_, err := e.st.AllowEarlyRenewal(e.ctx, tc.tenantID, tc.device, tc.until, actor)
					wantErr(t, err, tc.want)
				})
			})
			if got, _ := e.st.GetDevice(e.ctx, other.ID, otherDev.ID); !got.RenewAllowedUntil.IsZero() {
				t.Fatal("another store's device got a permission")
			}
			if got, _ := e.st.GetDevice(e.ctx, e.tenant.ID, d.ID); !got.RenewAllowedUntil.Equal(until) {
				t.Fatalf("a refused call changed the permission to %v", got.RenewAllowedUntil)
			}
		})
	}

	// The renewal uses the permission up.
	r := store.RenewRequest{TenantID: e.tenant.ID, DeviceID: d.ID, OldSerial: d.Serial, Serial: e.nextSerial(), Fingerprint: "cd",
		IssuedAt: e.now, ExpiresAt: e.now.Add(24 * time.Hour), Now: e.now}
	nd, _, err := e.st.RenewDevice(e.ctx, r, actor)
	if err != nil || !nd.RenewAllowedUntil.IsZero() {
		t.Fatalf("renew: %+v %v", nd.RenewAllowedUntil, err)
	}
	if stored, _ := e.st.GetDevice(e.ctx, e.tenant.ID, d.ID); !stored.RenewAllowedUntil.IsZero() {
		t.Fatalf("the permission outlived the renewal: %v", stored.RenewAllowedUntil)
	}

	// A revoked device is not allowed anything.
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d.ID, store.ReasonCessationOfOperation, actor); err != nil {
		t.Fatal(err)
	}
	e.unchanged(s, func() {
		_, err := e.st.AllowEarlyRenewal(e.ctx, e.tenant.ID, d.ID, until, actor)
		wantErr(t, err, store.ErrDeviceInactive)
	})
}
