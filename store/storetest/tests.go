package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

func testTenantsAndNames(t *testing.T, e *env) {
	if _, err := e.st.CreateTenant(e.ctx, store.NewTenant{Name: "shop"}, actor); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate tenant: %v", err)
	}
	got, err := e.st.GetTenantByName(e.ctx, "shop")
	if err != nil || got.ID != e.tenant.ID {
		t.Fatalf("GetTenantByName: %+v %v", got, err)
	}
	other := e.mustTenant("other")
	for _, name := range []string{"alice", "张三", "運營 01", "Ölaf"} {
		s := e.mustSub(e.tenant, name)
		if s.Name != name || s.TenantName != "shop" || s.FullName() != "shop:"+name || s.Status != store.StatusActive {
			t.Fatalf("created %+v", s)
		}
		byName, err := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, name)
		if err != nil || byName.ID != s.ID {
			t.Fatalf("GetSubAccountByName(%q): %v", name, err)
		}
	}
	// The same name in another store is a different account.
	e.mustSub(other, "alice")
	_, err = e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "alice", Role: "other", PasswordHash: "h"}, actor)
	wantErr(t, err, store.ErrDuplicate)
	list, err := e.st.ListSubAccounts(e.ctx, e.tenant.ID, store.SubAccountFilter{Search: "ÖL"})
	if err != nil || len(list) != 1 || list[0].Name != "Ölaf" {
		t.Fatalf("search: %+v %v", list, err)
	}
	all, _ := e.st.ListSubAccounts(e.ctx, e.tenant.ID, store.SubAccountFilter{})
	if len(all) != 4 || all[0].Name != "alice" {
		t.Fatalf("list order: %v", all)
	}
	tenants, err := e.st.ListTenants(e.ctx)
	if err != nil || len(tenants) != 2 {
		t.Fatalf("ListTenants: %v %v", tenants, err)
	}
}

func testSubAccountLifecycle(t *testing.T, e *env) {
	s := e.mustSub(e.tenant, "bob")
	seq0 := s.ChangeSeq
	s, err := e.st.SetRole(e.ctx, e.tenant.ID, s.ID, "finance", []string{"members", "members", "reports"}, actor)
	if err != nil || s.Role != "finance" || strings.Join(s.Grants, ",") != "members,reports" || s.ChangeSeq <= seq0 {
		t.Fatalf("SetRole: %+v %v", s, err)
	}
	if err := e.st.SetPassword(e.ctx, e.tenant.ID, s.ID, "newhash", actor); err != nil {
		t.Fatal(err)
	}
	end := e.now.Add(48 * time.Hour).Truncate(time.Millisecond)
	s, err = e.st.SetValidity(e.ctx, e.tenant.ID, s.ID, store.Window{NotAfter: end}, actor)
	if err != nil || !s.Window.NotAfter.Equal(end) {
		t.Fatalf("SetValidity: %v %v", s.Window, err)
	}
	s, _, err = e.st.SetStatus(e.ctx, e.tenant.ID, s.ID, store.StatusFrozen, actor)
	if err != nil || s.Status != store.StatusFrozen {
		t.Fatalf("freeze: %v", err)
	}
	got, err := e.st.GetSubAccount(e.ctx, e.tenant.ID, s.ID)
	if err != nil || got.PasswordHash != "newhash" || got.Status != store.StatusFrozen || got.Role != "finance" {
		t.Fatalf("reload: %+v %v", got, err)
	}
}

func testTenantIsolation(t *testing.T, e *env) {
	other := e.mustTenant("other")
	alice := e.protected(e.tenant, "alice", 2)
	dev := e.issue(alice)
	bob := e.protected(other, "bob", 2)
	e.unchanged(alice, func() {
		if _, err := e.st.GetSubAccount(e.ctx, other.ID, alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetSubAccount across stores: %v", err)
		}
		if _, err := e.st.GetDevice(e.ctx, other.ID, dev.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetDevice across stores: %v", err)
		}
		if devs, err := e.st.ListDevices(e.ctx, other.ID, alice.ID); err != nil || len(devs) != 0 {
			t.Fatalf("ListDevices across stores: %v %v", devs, err)
		}
		if _, err := e.st.RevokeDevice(e.ctx, other.ID, dev.ID, store.ReasonKeyCompromise, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeDevice across stores: %v", err)
		}
		if _, err := e.st.RevokeSubAccountDevices(e.ctx, other.ID, alice.ID, store.ReasonKeyCompromise, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeSubAccountDevices across stores: %v", err)
		}
		if _, err := e.st.SetProtection(e.ctx, other.ID, alice.ID, store.Protection{Enabled: true, MaxDevices: 5}, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetProtection across stores: %v", err)
		}
		if _, _, err := e.st.SetStatus(e.ctx, other.ID, alice.ID, store.StatusDeparted, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetStatus across stores: %v", err)
		}
		req := e.issueReq(alice)
		req.TenantID = other.ID
		if _, _, err := e.st.IssueDevice(e.ctx, req, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("IssueDevice across stores: %v", err)
		}
		if err := e.st.CreateTicket(e.ctx, store.NewTicket{TenantID: other.ID, SubID: alice.ID, Hash: make([]byte, 32), ExpiresAt: e.now.Add(time.Hour)}, actor); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("CreateTicket across stores: %v", err)
		}
		if err := e.st.TouchDevice(e.ctx, other.ID, dev.ID, e.now, "127.0.0.1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TouchDevice across stores: %v", err)
		}
	})
	// A ticket of another store's sub-account cannot be used here.
	h := e.ticket(bob, time.Hour)
	req := e.issueReq(alice)
	req.TicketHash = h
	e.unchanged(alice, func() {
		_, _, err := e.st.IssueDevice(e.ctx, req, actor)
		wantErr(t, err, store.ErrTicketUnknown)
	})
	if _, err := e.st.LookupTicket(e.ctx, h, e.now); err != nil {
		t.Fatalf("refused use consumed another store's ticket: %v", err)
	}
	// The legitimate calls work.
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, dev.ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
}

func testIssueEligibility(t *testing.T, e *env) {
	plain := e.mustSub(e.tenant, "plain")
	phoneOnly := e.mustSub(e.tenant, "phone")
	if _, err := e.st.EnablePhone(e.ctx, e.tenant.ID, phoneOnly.ID, []byte("JBSWY3DPEHPK3PXPJBSW"), actor); err != nil {
		t.Fatal(err)
	}
	frozen := e.protected(e.tenant, "frozen", 2)
	e.st.SetStatus(e.ctx, e.tenant.ID, frozen.ID, store.StatusFrozen, actor)
	departed := e.protected(e.tenant, "departed", 2)
	e.st.SetStatus(e.ctx, e.tenant.ID, departed.ID, store.StatusDeparted, actor)
	temp := e.protected(e.tenant, "temp", 2)
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, temp.ID, store.Window{NotAfter: e.now.Add(24 * time.Hour)}, actor); err != nil {
		t.Fatal(err)
	}
	future := e.protected(e.tenant, "future", 2)
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, future.ID, store.Window{NotBefore: e.now.Add(time.Hour)}, actor); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sub    store.SubAccount
		reason string
	}{
		{plain, "phone_not_verified"}, {phoneOnly, "protection_disabled"}, {frozen, "frozen"},
		{departed, "departed"}, {temp, "expires_after_window"}, {future, "outside_validity_window"},
	} {
		e.unchanged(tc.sub, func() {
			_, _, err := e.st.IssueDevice(e.ctx, e.issueReq(tc.sub), actor)
			var ne *store.NotEligibleError
			if !errors.As(err, &ne) || ne.Reason != tc.reason {
				t.Fatalf("%s: got %v, want not eligible (%s)", tc.sub.Name, err, tc.reason)
			}
		})
	}
	// Inside the window, a certificate that ends with it is fine.
	req := e.issueReq(temp)
	req.ExpiresAt = e.now.Add(23 * time.Hour)
	if _, _, err := e.st.IssueDevice(e.ctx, req, actor); err != nil {
		t.Fatal(err)
	}
}

func testIssueQuotaAndSlots(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 2)
	d1 := e.issue(s)
	e.issue(s)
	if n, err := e.st.CountActiveDevices(e.ctx, e.tenant.ID, s.ID, e.now); err != nil || n != 2 {
		t.Fatalf("CountActiveDevices: %d %v", n, err)
	}
	if n, _ := e.st.CountActiveDevices(e.ctx, store.NewID(), s.ID, e.now); n != 0 {
		t.Fatal("CountActiveDevices across stores")
	}
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, e.issueReq(s), actor)
		wantErr(t, err, store.ErrQuotaExceeded)
	})
	// A revoked device frees its slot.
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d1.ID, store.ReasonCessationOfOperation, actor); err != nil {
		t.Fatal(err)
	}
	e.issue(s)
	// An expired device frees its slot.
	s2 := e.protected(e.tenant, "bob", 1)
	req := e.issueReq(s2)
	req.ExpiresAt = e.now.Add(time.Hour)
	if _, _, err := e.st.IssueDevice(e.ctx, req, actor); err != nil {
		t.Fatal(err)
	}
	later := e.issueReq(s2)
	later.Now = e.now.Add(2 * time.Hour)
	later.IssuedAt = later.Now
	if _, _, err := e.st.IssueDevice(e.ctx, later, actor); err != nil {
		t.Fatalf("expired device still holds the slot: %v", err)
	}
	// A duplicate serial is refused.
	dup := e.issueReq(s)
	dup.Serial = d1.Serial
	e.st.SetProtection(e.ctx, e.tenant.ID, s.ID, store.Protection{Enabled: true, MaxDevices: 5}, actor)
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, dup, actor)
		wantErr(t, err, store.ErrDuplicate)
	})
}

// testQuotaRace: 10 concurrent issues against N=5, many rounds: exactly 5
// win every round and the losers' tickets stay unused.
func testQuotaRace(t *testing.T, e *env) {
	const rounds, contenders, n = 20, 10, 5
	for r := 0; r < rounds; r++ {
		s := e.protected(e.tenant, "racer"+strings.Repeat("x", r), n)
		tickets := make([][]byte, contenders)
		for i := range tickets {
			tickets[i] = e.ticket(s, time.Hour)
		}
		reqs := make([]store.IssueRequest, contenders)
		for i := range reqs {
			reqs[i] = e.issueReq(s)
			reqs[i].TicketHash = tickets[i]
		}
		errs := race(contenders, func(i int) error {
			_, _, err := e.st.IssueDevice(e.ctx, reqs[i], actor)
			return err
		})
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if _, err := e.st.LookupTicket(e.ctx, tickets[i], e.now); !errors.Is(err, store.ErrTicketUsed) {
					t.Fatalf("round %d: winner's ticket not consumed: %v", r, err)
				}
			case errors.Is(err, store.ErrQuotaExceeded):
				if _, err := e.st.LookupTicket(e.ctx, tickets[i], e.now); err != nil {
					t.Fatalf("round %d: loser's ticket consumed: %v", r, err)
				}
			default:
				t.Fatalf("round %d: %v", r, err)
			}
		}
		if won != n || e.active(s) != n {
			t.Fatalf("round %d: %d issued, %d active; want exactly %d", r, won, e.active(s), n)
		}
	}
}

func testTickets(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 5)
	other := e.protected(e.tenant, "bob", 5)
	h := e.ticket(s, 30*time.Minute)
	tk, err := e.st.LookupTicket(e.ctx, h, e.now)
	if err != nil || tk.SubID != s.ID || tk.TenantID != e.tenant.ID {
		t.Fatalf("LookupTicket: %+v %v", tk, err)
	}
	// Another sub-account of the same store cannot use it.
	req := e.issueReq(other)
	req.TicketHash = h
	e.unchanged(other, func() {
		_, _, err := e.st.IssueDevice(e.ctx, req, actor)
		wantErr(t, err, store.ErrTicketUnknown)
	})
	// Expired.
	late := e.issueReq(s)
	late.TicketHash = h
	late.Now = e.now.Add(31 * time.Minute)
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, late, actor)
		wantErr(t, err, store.ErrTicketExpired)
	})
	// Used once, then refused.
	ok := e.issueReq(s)
	ok.TicketHash = h
	if _, _, err := e.st.IssueDevice(e.ctx, ok, actor); err != nil {
		t.Fatal(err)
	}
	again := e.issueReq(s)
	again.TicketHash = h
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, again, actor)
		wantErr(t, err, store.ErrTicketUsed)
	})
	unknown := e.issueReq(s)
	unknown.TicketHash = make([]byte, 32)
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, unknown, actor)
		wantErr(t, err, store.ErrTicketUnknown)
	})
	_, err = e.st.LookupTicket(e.ctx, make([]byte, 32), e.now)
	wantErr(t, err, store.ErrTicketUnknown)
}

func testProtectionLimits(t *testing.T, e *env) {
	s := e.mustSub(e.tenant, "alice")
	_, err := e.st.SetProtection(e.ctx, e.tenant.ID, s.ID, store.Protection{Enabled: true, MaxDevices: 2}, actor)
	wantErr(t, err, store.ErrNotEligible) // phone verification first
	s = e.protected(e.tenant, "bob", 3)
	for _, n := range []int{0, 6, -1} {
		_, err := e.st.SetProtection(e.ctx, e.tenant.ID, s.ID, store.Protection{Enabled: true, MaxDevices: n}, actor)
		wantErr(t, err, store.ErrInvalid)
	}
	d1, d2, d3 := e.issue(s), e.issue(s), e.issue(s)
	_, err = e.st.SetProtection(e.ctx, e.tenant.ID, s.ID, store.Protection{Enabled: true, MaxDevices: 1}, actor)
	var be *store.BelowActiveError
	if !errors.As(err, &be) || len(be.Active) != 3 || !strings.Contains(err.Error(), d1.ID) {
		t.Fatalf("lowering N below the active count: %v", err)
	}
	got, _ := e.st.GetSubAccount(e.ctx, e.tenant.ID, s.ID)
	if got.Protection.MaxDevices != 3 {
		t.Fatalf("refused change applied: N=%d", got.Protection.MaxDevices)
	}
	e.st.RevokeDevice(e.ctx, e.tenant.ID, d2.ID, store.ReasonUnspecified, actor)
	e.st.RevokeDevice(e.ctx, e.tenant.ID, d3.ID, store.ReasonUnspecified, actor)
	if got, err = e.st.SetProtection(e.ctx, e.tenant.ID, s.ID, store.Protection{Enabled: true, MaxDevices: 1}, actor); err != nil || got.Protection.MaxDevices != 1 {
		t.Fatalf("lowering N after revoking: %v", err)
	}
	// Phone verification cannot be dropped while protection depends on it.
	_, err = e.st.EnablePhone(e.ctx, e.tenant.ID, s.ID, nil, actor)
	wantErr(t, err, store.ErrInvalid)
	if got, err = e.st.SetProtection(e.ctx, e.tenant.ID, s.ID, store.Protection{Enabled: false}, actor); err != nil || got.Protection.Enabled || got.Protection.MaxDevices != 1 {
		t.Fatalf("turning protection off: %+v %v", got.Protection, err)
	}
}

func testRenewDevice(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 1)
	d := e.issue(s)
	r := store.RenewRequest{TenantID: e.tenant.ID, DeviceID: d.ID, OldSerial: d.Serial, Serial: e.nextSerial(), Fingerprint: "cd",
		IssuedAt: e.now, ExpiresAt: e.now.Add(time.Hour * 24), Now: e.now}
	nd, rv, err := e.st.RenewDevice(e.ctx, r, actor)
	if err != nil || nd.ID != d.ID || nd.Serial != r.Serial || rv.Serial != d.Serial || rv.Reason != store.ReasonSuperseded {
		t.Fatalf("renew: %+v %+v %v", nd, rv, err)
	}
	if e.active(s) != 1 {
		t.Fatal("renew changed the slot count")
	}
	// The old serial can no longer renew (stale), nor another store.
	r2 := r
	r2.Serial = e.nextSerial()
	_, _, err = e.st.RenewDevice(e.ctx, r2, actor)
	wantErr(t, err, store.ErrStale)
	other := e.mustTenant("other")
	r3 := r2
	r3.OldSerial, r3.TenantID = nd.Serial, other.ID
	_, _, err = e.st.RenewDevice(e.ctx, r3, actor)
	wantErr(t, err, store.ErrNotFound)
	if found, err := e.st.FindDevice(e.ctx, strings.ToUpper(nd.Serial)); err != nil || found.ID != d.ID {
		t.Fatalf("FindDevice by serial: %v", err)
	}
	if found, err := e.st.FindDevice(e.ctx, d.ID); err != nil || found.Serial != nd.Serial {
		t.Fatalf("FindDevice by id: %v", err)
	}
}

// testKeyReuse: one key pair holds at most one active device, in any store
// (a replayed enrollment gets no second certificate and takes no slot);
// a revoked device's key may be enrolled again, and renewing a device with
// its own key is allowed.
func testKeyReuse(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 3)
	const key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	first := e.issueReq(s)
	first.KeyID = key
	d, _, err := e.st.IssueDevice(e.ctx, first, actor)
	if err != nil || d.KeyID != key {
		t.Fatalf("first: %+v %v", d, err)
	}
	if got, _ := e.st.GetDevice(e.ctx, e.tenant.ID, d.ID); got.KeyID != key {
		t.Fatalf("stored key id %q", got.KeyID)
	}
	other := e.protected(e.mustTenant("other-shop"), "bob", 1)
	for _, target := range []store.SubAccount{s, other} {
		e.unchanged(target, func() {
			again := e.issueReq(target)
			again.KeyID = key
			_, _, err := e.st.IssueDevice(e.ctx, again, actor)
			wantErr(t, err, store.ErrKeyInUse)
		})
	}
	bad := e.issueReq(s)
	bad.KeyID = "NOT-HEX"
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, bad, actor)
		wantErr(t, err, store.ErrInvalid)
	})
	// Renewing with the same key is fine; with another device's key not.
	r := store.RenewRequest{TenantID: e.tenant.ID, DeviceID: d.ID, OldSerial: d.Serial, Serial: e.nextSerial(), Fingerprint: "cd",
		KeyID: key, IssuedAt: e.now, ExpiresAt: e.now.Add(24 * time.Hour), Now: e.now}
	nd, _, err := e.st.RenewDevice(e.ctx, r, actor)
	if err != nil {
		t.Fatalf("renew with the same key: %v", err)
	}
	second := e.issueReq(s)
	second.KeyID = strings.Repeat("ab", 32)
	d2, _, err := e.st.IssueDevice(e.ctx, second, actor)
	if err != nil {
		t.Fatal(err)
	}
	r2 := store.RenewRequest{TenantID: e.tenant.ID, DeviceID: d2.ID, OldSerial: d2.Serial, Serial: e.nextSerial(), Fingerprint: "cd",
		KeyID: key, IssuedAt: e.now, ExpiresAt: e.now.Add(24 * time.Hour), Now: e.now}
	_, _, err = e.st.RenewDevice(e.ctx, r2, actor)
	wantErr(t, err, store.ErrKeyInUse)
	// Revoked: the key is free again.
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, nd.ID, store.ReasonCessationOfOperation, actor); err != nil {
		t.Fatal(err)
	}
	fresh := e.issueReq(s)
	fresh.KeyID = key
	if _, _, err := e.st.IssueDevice(e.ctx, fresh, actor); err != nil {
		t.Fatalf("the key of a revoked device: %v", err)
	}
}

func testRevokeAndDepart(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 3)
	d1, d2 := e.issue(s), e.issue(s)
	rv, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d1.ID, store.ReasonKeyCompromise, actor)
	if err != nil || rv.Serial != d1.Serial || rv.Seq <= 0 {
		t.Fatalf("revoke: %+v %v", rv, err)
	}
	e.unchanged(s, func() {
		_, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d1.ID, store.ReasonKeyCompromise, actor)
		wantErr(t, err, store.ErrDeviceInactive)
	})
	got, _ := e.st.GetDevice(e.ctx, e.tenant.ID, d1.ID)
	if got.Status != store.DeviceRevoked || got.Reason != store.ReasonKeyCompromise || got.RevokedAt.IsZero() {
		t.Fatalf("revoked device: %+v", got)
	}
	_, revs, err := e.st.SetStatus(e.ctx, e.tenant.ID, s.ID, store.StatusDeparted, actor)
	if err != nil || len(revs) != 1 || revs[0].DeviceID != d2.ID || revs[0].Reason != store.ReasonAffiliationChanged {
		t.Fatalf("depart: %+v %v", revs, err)
	}
	if e.active(s) != 0 {
		t.Fatal("departed sub-account keeps active devices")
	}
	// The name stays reserved; restore keeps the settings.
	_, err = e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "alice", Role: "other", PasswordHash: "h"}, actor)
	wantErr(t, err, store.ErrDuplicate)
	restored, _, err := e.st.SetStatus(e.ctx, e.tenant.ID, s.ID, store.StatusActive, actor)
	if err != nil || restored.Status != store.StatusActive || !restored.Protection.Enabled || restored.Protection.MaxDevices != 3 || !restored.PhoneEnabled {
		t.Fatalf("restore: %+v %v", restored, err)
	}
	s2 := e.protected(e.tenant, "bob", 2)
	e.issue(s2)
	e.issue(s2)
	revs, err = e.st.RevokeSubAccountDevices(e.ctx, e.tenant.ID, s2.ID, store.ReasonCessationOfOperation, actor)
	if err != nil || len(revs) != 2 || e.active(s2) != 0 {
		t.Fatalf("revoke all: %v %v", revs, err)
	}
	crl, err := e.st.RevocationsForCRL(e.ctx, e.now)
	if err != nil || len(crl) != 4 {
		t.Fatalf("CRL entries: %d %v", len(crl), err)
	}
	if crl, _ := e.st.RevocationsForCRL(e.ctx, e.now.Add(400*24*time.Hour)); len(crl) != 0 {
		t.Fatalf("expired certificates stay on the CRL: %d", len(crl))
	}
}

func testRevocationFeedOrder(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 5)
	start := e.seq()
	var devs []store.Device
	for i := 0; i < 5; i++ {
		devs = append(devs, e.issue(s))
	}
	errs := race(len(devs), func(i int) error {
		_, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, devs[i].ID, store.ReasonUnspecified, actor)
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	revs, err := e.st.RevocationsSince(e.ctx, start, 100)
	if err != nil || len(revs) != 5 {
		t.Fatalf("RevocationsSince: %d %v", len(revs), err)
	}
	for i := 1; i < len(revs); i++ {
		if revs[i].Seq <= revs[i-1].Seq {
			t.Fatal("revocations out of seq order")
		}
	}
	if cur := e.seq(); cur < revs[4].Seq {
		t.Fatalf("CurrentSeq %d behind revocation %d", cur, revs[4].Seq)
	}
	page, _ := e.st.RevocationsSince(e.ctx, revs[1].Seq, 2)
	if len(page) != 2 || page[0].Seq != revs[2].Seq {
		t.Fatalf("paging: %+v", page)
	}
	// Touching a device is not a policy change.
	before := e.seq()
	if err := e.st.TouchDevice(e.ctx, e.tenant.ID, devs[0].ID, e.now, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if e.seq() != before {
		t.Fatal("TouchDevice bumped the policy seq")
	}
	got, _ := e.st.GetDevice(e.ctx, e.tenant.ID, devs[0].ID)
	if got.LastSeenIP != "127.0.0.1" || got.LastSeenAt.IsZero() {
		t.Fatalf("last seen: %+v", got)
	}
}

func testSealedSecrets(t *testing.T, e *env) {
	secret := []byte("JBSWY3DPEHPK3PXPSECRET")
	s := e.mustSub(e.tenant, "alice")
	if _, err := e.st.EnablePhone(e.ctx, e.tenant.ID, s.ID, secret, actor); err != nil {
		t.Fatal(err)
	}
	got, _ := e.st.GetSubAccount(e.ctx, e.tenant.ID, s.ID)
	if string(got.TOTPSecret) != string(secret) || !got.PhoneEnabled {
		t.Fatalf("TOTP secret round trip: %q", got.TOTPSecret)
	}
	if err := e.st.SetOwnerLogin(e.ctx, e.tenant.ID, "ownerhash", secret, actor); err != nil {
		t.Fatal(err)
	}
	tn, _ := e.st.GetTenant(e.ctx, e.tenant.ID)
	if string(tn.OwnerTOTPSecret) != string(secret) || tn.OwnerPasswordHash != "ownerhash" {
		t.Fatal("owner login round trip")
	}
	for _, ev := range mustAudit(t, e) {
		for k, v := range ev.Detail {
			if strings.Contains(v, string(secret)) || strings.Contains(v, "ownerhash") {
				t.Fatalf("audit detail %s leaks a secret", k)
			}
		}
	}
}

// A TOTP step is spent once, per owner and per sub-account, and racing
// logins with the same code cannot both pass.
func testTOTPSingleUse(t *testing.T, e *env) {
	alice, bob := e.mustSub(e.tenant, "alice"), e.mustSub(e.tenant, "bob")
	steps := []struct {
		name  string
		subID string
		step  int64
		want  error
	}{
		{"owner first use", "", 100, nil},
		{"owner same code again", "", 100, store.ErrCodeReused},
		{"owner older code", "", 99, store.ErrCodeReused},
		{"owner next code", "", 101, nil},
		{"sub-account has its own counter", alice.ID, 100, nil},
		{"sub-account replay", alice.ID, 100, store.ErrCodeReused},
		{"other sub-account unaffected", bob.ID, 100, nil},
		{"unknown sub-account", "nope", 100, store.ErrNotFound},
	}
	for _, st := range steps {
		if err := e.st.UseTOTPStep(e.ctx, e.tenant.ID, st.subID, st.step); !errors.Is(err, st.want) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	if err := e.st.UseTOTPStep(e.ctx, "no-such-tenant", "", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- e.st.UseTOTPStep(e.ctx, e.tenant.ID, alice.ID, 500) }()
	}
	ok := 0
	for range 8 {
		if err := <-errs; err == nil {
			ok++
		} else if !errors.Is(err, store.ErrCodeReused) {
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 8 racing uses of one code passed, want 1", ok)
	}
}

func mustAudit(t *testing.T, e *env) []store.AuditEvent {
	evs, err := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func testAuditChain(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 2)
	e.issue(s)
	errs := race(8, func(i int) error {
		_, err := e.st.AppendAudit(e.ctx, e.tenant.ID, store.AuditEntry{Actor: store.Actor{Kind: "proxy"}, Action: "proxy.allow", Target: "shop:alice", Outcome: "allow", Detail: map[string]string{"path": "/orders/sold"}})
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	evs := mustAudit(t, e)
	for i, ev := range evs {
		if ev.Seq != int64(i+1) || (i > 0 && ev.PrevHash != evs[i-1].Hash) {
			t.Fatalf("chain at %d: %+v", i, ev)
		}
	}
	if evs[0].Action != "tenant.create" {
		t.Fatalf("first event %q", evs[0].Action)
	}
	if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	filtered, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "proxy."})
	if len(filtered) != 8 {
		t.Fatalf("action filter: %d", len(filtered))
	}
	page, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{AfterSeq: 2, Limit: 3})
	if len(page) != 3 || page[0].Seq != 3 {
		t.Fatalf("paging: %+v", page)
	}
	other := e.mustTenant("other")
	if evs, _ := e.st.ListAudit(e.ctx, other.ID, store.AuditFilter{}); len(evs) != 1 {
		t.Fatalf("other store sees %d events", len(evs))
	}
	// A batch across stores keeps each chain intact and in order.
	var batch []store.AuditRecord
	for i := 0; i < 150; i++ { // more than one multi-row INSERT
		tn := e.tenant.ID
		if i%3 == 0 {
			tn = other.ID
		}
		batch = append(batch, store.AuditRecord{TenantID: tn, Entry: store.AuditEntry{Action: "proxy.allow", Target: fmt.Sprint(i)}})
	}
	if err := e.st.AppendAuditBatch(e.ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{e.tenant.ID, other.ID} {
		if err := e.st.VerifyAudit(e.ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	otherEvs, _ := e.st.ListAudit(e.ctx, other.ID, store.AuditFilter{Action: "proxy."})
	if len(otherEvs) != 50 || otherEvs[0].Target != "0" || otherEvs[49].Target != "147" {
		t.Fatalf("batch order in the other store: %+v", otherEvs)
	}
	// A batch naming an unknown store writes nothing.
	before := len(mustAudit(t, e))
	err := e.st.AppendAuditBatch(e.ctx, []store.AuditRecord{{TenantID: e.tenant.ID, Entry: store.AuditEntry{Action: "x"}}, {TenantID: store.NewID(), Entry: store.AuditEntry{Action: "x"}}})
	if err == nil || len(mustAudit(t, e)) != before {
		t.Fatalf("batch with an unknown store: %v", err)
	}
}

func testBadInput(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 2)
	long := strings.Repeat("x", 65)
	for name, fn := range map[string]func() error{
		"empty store name": func() error { _, err := e.st.CreateTenant(e.ctx, store.NewTenant{Name: ""}, actor); return err },
		"store name with space": func() error {
			_, err := e.st.CreateTenant(e.ctx, store.NewTenant{Name: "a b"}, actor)
			return err
		},
		"sub name with colon": func() error {
			_, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "a:b", Role: "x", PasswordHash: "h"}, actor)
			return err
		},
		"sub name with control char": func() error {
			_, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "a\x07", Role: "x", PasswordHash: "h"}, actor)
			return err
		},
		"sub name too long": func() error {
			_, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: long, Role: "x", PasswordHash: "h"}, actor)
			return err
		},
		"no role": func() error {
			_, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "r", PasswordHash: "h"}, actor)
			return err
		},
		"unknown status": func() error {
			_, _, err := e.st.SetStatus(e.ctx, e.tenant.ID, s.ID, "gone", actor)
			return err
		},
		"bad reason": func() error {
			_, err := e.st.RevokeSubAccountDevices(e.ctx, e.tenant.ID, s.ID, 42, actor)
			return err
		},
		"bad serial": func() error {
			r := e.issueReq(s)
			r.Serial = "ZZ"
			_, _, err := e.st.IssueDevice(e.ctx, r, actor)
			return err
		},
		"empty validity": func() error {
			r := e.issueReq(s)
			r.ExpiresAt = r.IssuedAt
			_, _, err := e.st.IssueDevice(e.ctx, r, actor)
			return err
		},
		"window backwards": func() error {
			_, err := e.st.SetValidity(e.ctx, e.tenant.ID, s.ID, store.Window{NotBefore: e.now, NotAfter: e.now.Add(-time.Hour)}, actor)
			return err
		},
		"short ticket hash": func() error {
			return e.st.CreateTicket(e.ctx, store.NewTicket{TenantID: e.tenant.ID, SubID: s.ID, Hash: []byte("x"), ExpiresAt: e.now.Add(time.Hour)}, actor)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e.unchanged(s, func() { wantErr(t, fn(), store.ErrInvalid) })
		})
	}
	_, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: store.NewID(), Name: "ghost", Role: "x", PasswordHash: "h"}, actor)
	wantErr(t, err, store.ErrNotFound)
}

func testPolicyChanges(t *testing.T, e *env) {
	all, err := e.st.PolicyChangesSince(e.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := e.protected(e.tenant, "alice", 2)
	d := e.issue(s)
	ch, err := e.st.PolicyChangesSince(e.ctx, all.Seq)
	if err != nil || ch.Seq <= all.Seq || len(ch.SubAccounts) != 1 || len(ch.Devices) != 1 || ch.Devices[0].ID != d.ID {
		t.Fatalf("changes after setup: %+v %v", ch, err)
	}
	if ch.SubAccounts[0].TOTPSecret != nil || ch.SubAccounts[0].PasswordHash != "" || ch.SubAccounts[0].TenantName != "shop" {
		t.Fatal("policy changes carry secrets or lack the store name")
	}
	// What a decision (and the CA's feed) reads of a device is all there.
	if got := ch.Devices[0]; got.TenantID != d.TenantID || got.SubID != d.SubID || got.Serial != d.Serial ||
		got.Status != store.DeviceActive || !got.ExpiresAt.Equal(d.ExpiresAt) || got.ChangeSeq != d.ChangeSeq || got.ChangeSeq == 0 {
		t.Fatalf("changed device %+v, want the fields of %+v", got, d)
	}
	if none, _ := e.st.PolicyChangesSince(e.ctx, ch.Seq); len(none.SubAccounts)+len(none.Devices) != 0 || none.Seq != ch.Seq {
		t.Fatalf("no change: %+v", none)
	}
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d.ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	after, _ := e.st.PolicyChangesSince(e.ctx, ch.Seq)
	if len(after.Devices) != 1 || after.Devices[0].Status != store.DeviceRevoked || len(after.SubAccounts) != 0 {
		t.Fatalf("after revoke: %+v", after)
	}
	if first, _ := e.st.PolicyChangesSince(e.ctx, 0); len(first.Devices) != 0 {
		t.Fatalf("a first load returned %d revoked devices", len(first.Devices))
	}
	other := e.mustTenant("other")
	e.mustSub(other, "bob")
	cross, _ := e.st.PolicyChangesSince(e.ctx, after.Seq)
	if len(cross.SubAccounts) != 1 || cross.SubAccounts[0].TenantID != other.ID {
		t.Fatalf("changes of another store: %+v", cross)
	}
}
