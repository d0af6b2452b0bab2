// Package storetest is the conformance suite every store.Store backend
// must pass: tenant isolation, the quota gate under concurrency, tickets,
// revocations and the audit chain.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Opener returns a fresh, empty store for one test; Run calls it from
// parallel subtests.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"TenantsAndNames", testTenantsAndNames},
		{"SubAccountLifecycle", testSubAccountLifecycle},
		{"TenantIsolation", testTenantIsolation},
		{"IssueEligibility", testIssueEligibility},
		{"IssueQuotaAndSlots", testIssueQuotaAndSlots},
		{"QuotaRace", testQuotaRace},
		{"Tickets", testTickets},
		{"IssuePrecheck", testIssuePrecheck},
		{"ProtectionLimits", testProtectionLimits},
		{"RenewDevice", testRenewDevice},
		{"AllowEarlyRenewal", testAllowEarlyRenewal},
		{"KeyReuse", testKeyReuse},
		{"RedeliverDevice", testRedeliverDevice},
		{"CountDevicesByIssuer", testCountDevicesByIssuer},
		{"RevokeAndDepart", testRevokeAndDepart},
		{"RevocationFeedOrder", testRevocationFeedOrder},
		{"SealedSecrets", testSealedSecrets},
		{"TOTPSingleUse", testTOTPSingleUse},
		{"Sessions", testSessions},
		{"Lockouts", testLockouts},
		{"ProxyCerts", testProxyCerts},
		{"ProxyReports", testProxyReports},
		{"AuditChain", testAuditChain},
		{"AuditGaps", testAuditGaps},
		{"PolicyChanges", testPolicyChanges},
		{"PolicyChangesFollowed", testPolicyChangesFollowed},
		{"BadInput", testBadInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // every group has a store of its own
			tc.fn(t, newEnv(t, open(t)))
		})
	}
}

// env is one store with a tenant "shop" and helpers.
type env struct {
	t      *testing.T
	ctx    context.Context
	st     store.Store
	tenant store.Tenant
	now    time.Time
	serial int
}

var actor = store.Actor{Kind: "cli", Name: "storetest"}

func newEnv(t *testing.T, st store.Store) *env {
	e := &env{t: t, ctx: context.Background(), st: st, now: time.Now().UTC()}
	e.tenant = e.mustTenant("shop")
	return e
}

func (e *env) mustTenant(name string) store.Tenant {
	e.t.Helper()
	return Tenant(e.t, e.st, name)
}

func (e *env) mustSub(tn store.Tenant, name string) store.SubAccount {
	e.t.Helper()
	return Sub(e.t, e.st, store.NewSubAccount{TenantID: tn.ID, Name: name})
}

// protected returns a sub-account with phone verification and N devices.
func (e *env) protected(tn store.Tenant, name string, n int) store.SubAccount {
	e.t.Helper()
	return Protected(e.t, e.st, tn, name, n)
}

func (e *env) nextSerial() string {
	e.serial++
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.TrimLeft(fmt.Sprintf("%x%04x", b, e.serial), "0")
}

func (e *env) issueReq(s store.SubAccount) store.IssueRequest {
	return store.IssueRequest{
		TenantID: s.TenantID, SubID: s.ID, DeviceID: store.NewID(), Label: "pc", Serial: e.nextSerial(), Fingerprint: "ab",
		IssuedAt: e.now, ExpiresAt: e.now.Add(365 * 24 * time.Hour), Now: e.now,
	}
}

func (e *env) issue(s store.SubAccount) store.Device {
	e.t.Helper()
	d, _, err := e.st.IssueDevice(e.ctx, e.issueReq(s), actor)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) ticket(s store.SubAccount, ttl time.Duration) []byte {
	e.t.Helper()
	var code [20]byte
	_, _ = rand.Read(code[:])
	h := sha256.Sum256(code[:])
	if err := e.st.CreateTicket(e.ctx, store.NewTicket{TenantID: s.TenantID, SubID: s.ID, Hash: h[:], ExpiresAt: e.now.Add(ttl)}, actor); err != nil {
		e.t.Fatal(err)
	}
	return h[:]
}

func (e *env) active(s store.SubAccount) int {
	e.t.Helper()
	devs, err := e.st.ListDevices(e.ctx, s.TenantID, s.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return store.CountActive(devs, e.now)
}

func (e *env) auditLen(tn store.Tenant) int {
	e.t.Helper()
	evs, err := e.st.ListAudit(e.ctx, tn.ID, store.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

// unchanged runs fn and fails if it changed the devices or audit log of s.
func (e *env) unchanged(s store.SubAccount, fn func()) {
	e.t.Helper()
	tn := store.Tenant{ID: s.TenantID}
	devs, audit, seq := e.active(s), e.auditLen(tn), e.seq()
	fn()
	if d, a, q := e.active(s), e.auditLen(tn), e.seq(); d != devs || a != audit || q != seq {
		e.t.Fatalf("a refused call changed the store: devices %d->%d, audit %d->%d, seq %d->%d", devs, d, audit, a, seq, q)
	}
}

func (e *env) seq() int64 {
	e.t.Helper()
	v, err := e.st.CurrentSeq(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// race runs fn n times at once and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}(i)
	}
	close(start)
	wg.Wait()
	return errs
}
