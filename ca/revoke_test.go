package ca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

func parseCRL(t *testing.T, f *fixture) *x509.RevocationList {
	t.Helper()
	der, _ := f.ca.CRL()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(f.ca.Keys().Device); err != nil {
		t.Fatalf("CRL not signed by the device CA: %v", err)
	}
	return crl
}

func crlHas(crl *x509.RevocationList, serial *big.Int) (x509.RevocationListEntry, bool) {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return e, true
		}
	}
	return x509.RevocationListEntry{}, false
}

func ocspStatusOf(t *testing.T, f *fixture, cert *x509.Certificate) *ocsp.Response {
	t.Helper()
	reqDER, err := ocsp.CreateRequest(cert, f.ca.Keys().Device, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil {
		t.Fatal(err)
	}
	respDER, err := f.ca.ocspStatus(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ocsp.ParseResponseForCert(respDER, cert, f.ca.Keys().Device)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestRevokePublishesCRLAndOCSP(t *testing.T) {
	f := newFixture(t)
	keep, gone := f.issue(f.alice), f.issue(f.alice)
	first := parseCRL(t, f)

	if got := ocspStatusOf(t, f, gone.Chain[0]); got.Status != ocsp.Good {
		t.Fatalf("OCSP before revoke: %d, want good", got.Status)
	}
	rv, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, gone.Device.ID, store.ReasonKeyCompromise, testActor)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Seq <= 0 {
		t.Fatalf("revocation seq %d", rv.Seq)
	}
	crl := parseCRL(t, f)
	if crl.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("CRL number did not grow: %v -> %v", first.Number, crl.Number)
	}
	e, ok := crlHas(crl, gone.Chain[0].SerialNumber)
	if !ok || e.ReasonCode != int(store.ReasonKeyCompromise) {
		t.Fatalf("revoked serial missing from CRL or wrong reason: %+v", e)
	}
	if _, ok := crlHas(crl, keep.Chain[0].SerialNumber); ok {
		t.Fatal("active serial listed in CRL")
	}
	// The CRL file nginx/HAProxy read is the same CRL.
	data, err := os.ReadFile(f.ca.opts.CRLFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	fileCRL, err := x509.ParseRevocationList(block.Bytes)
	if err != nil || fileCRL.Number.Cmp(crl.Number) != 0 {
		t.Fatalf("CRL file is not the current CRL: %v", err)
	}
	if got := ocspStatusOf(t, f, gone.Chain[0]); got.Status != ocsp.Revoked || got.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("OCSP after revoke: status %d reason %d", got.Status, got.RevocationReason)
	}
	if got := ocspStatusOf(t, f, keep.Chain[0]); got.Status != ocsp.Good {
		t.Fatalf("OCSP of active device: %d", got.Status)
	}
	// Revoking twice is refused and changes nothing.
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, gone.Device.ID, store.ReasonKeyCompromise, testActor); !errors.Is(err, store.ErrDeviceInactive) {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestRevokeRefusesOtherStoreAndBadReason(t *testing.T) {
	f := newFixture(t)
	is := f.issue(f.alice)
	other := storetest.Tenant(t, f.store, "other")
	if _, err := f.ca.RevokeDevice(f.ctx, other.ID, is.Device.ID, store.ReasonUnspecified, testActor); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke with another store's id: %v", err)
	}
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, is.Device.ID, store.RevocationReason(8), testActor); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("reason 8 (removeFromCRL): %v", err)
	}
	if got := ocspStatusOf(t, f, is.Chain[0]); got.Status != ocsp.Good {
		t.Fatal("refused revokes changed the certificate status")
	}
}

func TestRenewKeepsSlotAndRevokesOldSerial(t *testing.T) {
	f := newFixture(t)
	old := f.issue(f.alice)
	f.issue(f.alice) // quota now full: renew must still work (same slot)
	// A day before its end: renewable.
	f.now = f.now.Add(f.ca.opts.Validity - 24*time.Hour)
	renewed, err := f.ca.Renew(f.ctx, old.Chain[0], newCSR(t, newKey(t), nil))
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Device.ID != old.Device.ID || renewed.Device.Serial == old.Device.Serial {
		t.Fatalf("renew: device %s serial %s -> device %s serial %s", old.Device.ID, old.Device.Serial, renewed.Device.ID, renewed.Device.Serial)
	}
	if renewed.Installed != 2 {
		t.Fatalf("installed %d after renew, want 2", renewed.Installed)
	}
	e, ok := crlHas(parseCRL(t, f), old.Chain[0].SerialNumber)
	if !ok || e.ReasonCode != int(store.ReasonSuperseded) {
		t.Fatalf("old serial not revoked as superseded: %+v %v", e, ok)
	}
	// The superseded certificate cannot renew again.
	if _, err := f.ca.Renew(f.ctx, old.Chain[0], newCSR(t, newKey(t), nil)); err == nil {
		t.Fatal("renew with the superseded certificate succeeded")
	}
}

func TestDepartRevokesAllDevices(t *testing.T) {
	f := newFixture(t)
	a, b := f.issue(f.alice), f.issue(f.alice)
	_, revs, err := f.ca.SetStatus(f.ctx, f.tenant.ID, f.alice.ID, store.StatusDeparted, testActor)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 {
		t.Fatalf("%d revocations, want 2", len(revs))
	}
	crl := parseCRL(t, f)
	for _, is := range []*Issued{a, b} {
		if _, ok := crlHas(crl, is.Chain[0].SerialNumber); !ok {
			t.Fatalf("device %s of departed sub-account not in CRL", is.Device.ID)
		}
	}
	if _, err := f.ca.Issue(f.ctx, IssueRequest{TenantID: f.tenant.ID, SubID: f.alice.ID, CSR: newCSR(t, newKey(t), nil)}); !errors.Is(err, store.ErrNotEligible) {
		t.Fatalf("departed sub-account got a certificate: %v", err)
	}
}
