package ca

import (
	"crypto"
	"net/http"
	"testing"
	"time"
)

// An owner's permission lets a device renew once far from its end: without
// it the renewal is refused (403 renew_too_early, nothing changes); with it
// the device renews (201) and the permission is used up (the next early
// renewal is refused again); a permission that has ended, or one given to
// another device, does not help; and the per-device rate limit still holds.
func TestRenewEarlyWithOwnerPermission(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	issue := func() (*Issued, crypto.Signer) {
		t.Helper()
		key := newKey(t)
		is, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, key, nil), Label: "pc"})
		if err != nil {
			t.Fatal(err)
		}
		return is, key
	}
	allow := func(deviceID string, until time.Time) {
		t.Helper()
		if _, err := f.store.AllowEarlyRenewal(f.ctx, f.tenant.ID, deviceID, until, testActor); err != nil {
			t.Fatal(err)
		}
	}
	refusedEarly := func(step string, is *Issued, key crypto.Signer) {
		t.Helper()
		before, crl := f.counts(f.alice), len(parseCRL(t, f).RevokedCertificateEntries)
		status, _, e, _, _ := renewOverHTTP(t, f, url, is, key)
		if status != http.StatusForbidden || e.Code != "renew_too_early" {
			t.Fatalf("%s: %d %+v, want 403 renew_too_early", step, status, e)
		}
		dev, _ := f.store.GetDevice(f.ctx, f.tenant.ID, is.Device.ID)
		if dev.Serial != is.Device.Serial || f.counts(f.alice) != before || len(parseCRL(t, f).RevokedCertificateEntries) != crl {
			t.Fatalf("%s: a refused renewal changed the device, the audit log or the CRL", step)
		}
	}

	a, keyA := issue()
	b, keyB := issue()
	refusedEarly("no permission", a, keyA)

	allow(b.Device.ID, f.now.Add(time.Hour))
	refusedEarly("permission for another device", a, keyA)

	allow(a.Device.ID, f.now.Add(time.Hour))
	status, _, e, renewed, renewedKey := renewOverHTTP(t, f, url, a, keyA)
	if status != http.StatusCreated || renewed.Device.ID != a.Device.ID {
		t.Fatalf("early renewal the owner allowed: %d %+v, want 201", status, e)
	}
	if dev, _ := f.store.GetDevice(f.ctx, f.tenant.ID, a.Device.ID); !dev.RenewAllowedUntil.IsZero() {
		t.Fatalf("the renewal left the permission in place (until %v)", dev.RenewAllowedUntil)
	}
	refusedEarly("permission used up", renewed, renewedKey)

	// The rate limit still applies: B renews maxRenewals times, each
	// allowed, then is refused with 429 although allowed again.
	cur, key := b, keyB
	for i := range maxRenewals + 1 {
		allow(cur.Device.ID, f.now.Add(time.Hour))
		status, _, e, next, nextKey := renewOverHTTP(t, f, url, cur, key)
		if i == maxRenewals {
			if status != http.StatusTooManyRequests || e.Code != "renew_rate_limited" {
				t.Fatalf("renewal %d with permission: %d %+v, want 429 renew_rate_limited", i, status, e)
			}
			break
		}
		if status != http.StatusCreated {
			t.Fatalf("allowed renewal %d: %d %+v", i, status, e)
		}
		cur, key = next, nextKey
	}

	// Last, as it moves the CA's clock past what TLS accepts for new certificates.
	allow(renewed.Device.ID, f.now.Add(time.Hour))
	f.now = f.now.Add(time.Hour + time.Minute)
	refusedEarly("permission ended", renewed, renewedKey)
}
