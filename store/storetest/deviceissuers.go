package storetest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"maps"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
)

// certReq is e.issueReq carrying a real certificate of inter's
// intermediate (its DER, fingerprint and key id), expiring at expires.
func (e *env) certReq(s store.SubAccount, inter *testpki.PKI, expires time.Time) store.IssueRequest {
	e.t.Helper()
	r := e.issueReq(s)
	leaf, _ := inter.Leaf(e.t, testpki.LeafOptions{CommonName: "pc"})
	e.setCert(&r.CertDER, &r.Fingerprint, &r.KeyID, leaf)
	r.ExpiresAt = expires
	return r
}

func (e *env) setCert(der *[]byte, fingerprint, keyID *string, c *x509.Certificate) {
	sum, key := sha256.Sum256(c.Raw), sha256.Sum256(c.RawSubjectPublicKeyInfo)
	*der, *fingerprint, *keyID = c.Raw, hex.EncodeToString(sum[:]), hex.EncodeToString(key[:])
}

func (e *env) issueWith(r store.IssueRequest) store.Device {
	e.t.Helper()
	d, _, err := e.st.IssueDevice(e.ctx, r, actor)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// testCountDevicesByIssuer: active devices are counted per issuing
// intermediate across every store (tenant); revoked, expired and departed
// devices are not; a renewal moves a device to its new issuer; a device
// without a readable certificate is counted as unknown, never guessed.
func testCountDevicesByIssuer(t *testing.T, e *env) {
	old, next := testpki.New(t), testpki.New(t)
	oldKID, nextKID := hex.EncodeToString(old.Intermediate.SubjectKeyId), hex.EncodeToString(next.Intermediate.SubjectKeyId)
	if oldKID == "" || nextKID == "" || oldKID == nextKID {
		t.Fatalf("test intermediates need distinct key ids: %q %q", oldKID, nextKID)
	}
	year := e.now.Add(365 * 24 * time.Hour)

	// Nothing yet: an empty count, not an error.
	if got, err := e.st.CountDevicesByIssuer(e.ctx, e.now); err != nil || got.Total() != 0 || len(got.ByKeyID) != 0 {
		t.Fatalf("empty store: %+v %v", got, err)
	}

	alice := e.protected(e.tenant, "alice", 5)
	e.issueWith(e.certReq(alice, old, year))
	e.issueWith(e.certReq(alice, old, year))
	e.issueWith(e.certReq(alice, old, e.now.Add(time.Hour))) // expires within the hour
	revoked := e.issueWith(e.certReq(alice, old, year))
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, revoked.ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	// Renewed from the old intermediate into the new one.
	renewed := e.issueWith(e.certReq(alice, old, year))
	leaf, _ := next.Leaf(t, testpki.LeafOptions{CommonName: "pc"})
	rr := store.RenewRequest{TenantID: e.tenant.ID, DeviceID: renewed.ID, OldSerial: renewed.Serial, Serial: e.nextSerial(),
		IssuedAt: e.now, ExpiresAt: year, Now: e.now}
	e.setCert(&rr.CertDER, &rr.Fingerprint, &rr.KeyID, leaf)
	if _, _, err := e.st.RenewDevice(e.ctx, rr, actor); err != nil {
		t.Fatal(err)
	}

	// Another store: one device of each intermediate, one recorded without
	// a certificate and one whose stored bytes are no certificate.
	other := e.mustTenant("other")
	bob := e.protected(other, "bob", 5)
	e.issueWith(e.certReq(bob, old, year))
	e.issueWith(e.certReq(bob, next, year))
	e.issueWith(e.issueReq(bob))
	e.issueWith(e.derReq(bob, randKeyID()))

	// A departed sub-account's devices are revoked: not counted.
	carol := e.protected(other, "carol", 2)
	e.issueWith(e.certReq(carol, next, year))
	if _, _, err := e.st.SetStatus(e.ctx, other.ID, carol.ID, store.StatusDeparted, actor); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		at      time.Time
		want    map[string]int
		unknown int
	}{
		{"now", e.now, map[string]int{oldKID: 4, nextKID: 2}, 2},
		{"after the short one expired", e.now.Add(2 * time.Hour), map[string]int{oldKID: 3, nextKID: 2}, 2},
		{"after every device expired", year.Add(time.Second), map[string]int{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.st.CountDevicesByIssuer(e.ctx, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got.ByKeyID, tc.want) || got.Unknown != tc.unknown {
				t.Fatalf("counts %v unknown %d, want %v unknown %d", got.ByKeyID, got.Unknown, tc.want, tc.unknown)
			}
		})
	}
}
