package storetest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// derReq is e.issueReq with a (fake) certificate DER, its fingerprint and
// a key id.
func (e *env) derReq(s store.SubAccount, keyID string) store.IssueRequest {
	r := e.issueReq(s)
	r.CertDER = make([]byte, 300)
	_, _ = rand.Read(r.CertDER)
	sum := sha256.Sum256(r.CertDER)
	r.Fingerprint, r.KeyID = hex.EncodeToString(sum[:]), keyID
	return r
}

func randKeyID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// testRedeliverDevice: the certificate recorded with a device is handed out
// again only to its own sub-account, for its own key, while the device is
// active, recent and never seen at a proxy; a re-delivery changes nothing
// but the audit log, and a refused one nothing at all.
func testRedeliverDevice(t *testing.T, e *env) {
	s := e.protected(e.tenant, "alice", 2)
	bob := e.protected(e.tenant, "bob", 2)
	other := e.mustTenant("other")
	key := randKeyID()
	req := e.derReq(s, key)
	d, _, err := e.st.IssueDevice(e.ctx, req, actor)
	if err != nil {
		t.Fatal(err)
	}
	rr := store.RedeliverRequest{TenantID: e.tenant.ID, SubID: s.ID, KeyID: key,
		IssuedFrom: e.now.Add(-time.Minute), IssuedTo: e.now.Add(time.Minute), Now: e.now}

	// The legitimate case: the same device and the identical DER; only the
	// audit log grows.
	devs, audit, seq := e.active(s), e.auditLen(e.tenant), e.seq()
	got, der, err := e.st.RedeliverDevice(e.ctx, rr, actor)
	if err != nil || got.ID != d.ID || got.Serial != d.Serial || !bytes.Equal(der, req.CertDER) {
		t.Fatalf("redeliver: %+v %v", got, err)
	}
	if e.active(s) != devs || e.seq() != seq || e.auditLen(e.tenant) != audit+1 {
		t.Fatal("a re-delivery changed devices or the policy seq, or was not audited")
	}
	evs, err := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	if err != nil || evs[len(evs)-1].Action != "device.redelivered" {
		t.Fatalf("last audit event: %+v %v", evs[len(evs)-1], err)
	}

	// Refusals: another sub-account, another tenant, another key, outside
	// the window, bad input. None changes anything.
	refused := map[string]store.RedeliverRequest{}
	r := rr
	r.SubID = bob.ID
	refused["other sub-account"] = r
	r = rr
	r.TenantID = other.ID
	refused["other tenant"] = r
	r = rr
	r.KeyID = randKeyID()
	refused["other key"] = r
	r = rr
	r.IssuedFrom, r.IssuedTo = e.now.Add(time.Second), e.now.Add(time.Hour)
	refused["issued before the window"] = r
	r = rr
	r.Now = req.ExpiresAt.Add(time.Second)
	refused["expired"] = r
	for name, r := range refused {
		e.unchanged(s, func() {
			if _, der, err := e.st.RedeliverDevice(e.ctx, r, actor); err == nil || der != nil {
				t.Fatalf("%s: re-delivered", name)
			}
		})
	}
	for name, r := range map[string]store.RedeliverRequest{
		"no key":        {TenantID: rr.TenantID, SubID: rr.SubID, IssuedFrom: rr.IssuedFrom, IssuedTo: rr.IssuedTo},
		"no window":     {TenantID: rr.TenantID, SubID: rr.SubID, KeyID: key},
		"window upside": {TenantID: rr.TenantID, SubID: rr.SubID, KeyID: key, IssuedFrom: rr.IssuedTo, IssuedTo: rr.IssuedFrom},
	} {
		e.unchanged(s, func() {
			_, _, err := e.st.RedeliverDevice(e.ctx, r, actor)
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}

	// A DER that is not the fingerprinted certificate is refused.
	bad := e.derReq(s, randKeyID())
	bad.CertDER = append(bad.CertDER, 0)
	e.unchanged(s, func() {
		_, _, err := e.st.IssueDevice(e.ctx, bad, actor)
		wantErr(t, err, store.ErrInvalid)
	})

	// A renewal replaces the stored certificate.
	nr := store.RenewRequest{TenantID: e.tenant.ID, DeviceID: d.ID, OldSerial: d.Serial, Serial: e.nextSerial(),
		CertDER: bytes.Repeat([]byte{7}, 200), KeyID: key, IssuedAt: e.now, ExpiresAt: e.now.Add(24 * time.Hour), Now: e.now}
	sum := sha256.Sum256(nr.CertDER)
	nr.Fingerprint = hex.EncodeToString(sum[:])
	if _, _, err := e.st.RenewDevice(e.ctx, nr, actor); err != nil {
		t.Fatal(err)
	}
	if _, der, err := e.st.RedeliverDevice(e.ctx, rr, actor); err != nil || !bytes.Equal(der, nr.CertDER) {
		t.Fatalf("after renewal: %v", err)
	}

	// Seen at a proxy, revoked, or recorded without a certificate: never.
	if err := e.st.TouchDevice(e.ctx, e.tenant.ID, d.ID, e.now, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	e.unchanged(s, func() {
		_, _, err := e.st.RedeliverDevice(e.ctx, rr, actor)
		wantErr(t, err, store.ErrNotFound)
	})
	key2 := randKeyID()
	d2, _, err := e.st.IssueDevice(e.ctx, e.derReq(s, key2), actor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, d2.ID, store.ReasonUnspecified, actor); err != nil {
		t.Fatal(err)
	}
	r = rr
	r.KeyID = key2
	e.unchanged(s, func() {
		_, _, err := e.st.RedeliverDevice(e.ctx, r, actor)
		wantErr(t, err, store.ErrNotFound)
	})
	legacy := e.issueReq(bob)
	legacy.KeyID = randKeyID()
	if _, _, err := e.st.IssueDevice(e.ctx, legacy, actor); err != nil {
		t.Fatal(err)
	}
	r = rr
	r.SubID, r.KeyID = bob.ID, legacy.KeyID
	e.unchanged(bob, func() {
		_, _, err := e.st.RedeliverDevice(e.ctx, r, actor)
		wantErr(t, err, store.ErrNotFound)
	})
}
