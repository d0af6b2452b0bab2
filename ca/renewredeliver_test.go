package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// postRenew asks /v1/renew over mTLS with chain/key for a certificate of
// csrKey and returns the status, the error code and the answer.
func postRenew(t *testing.T, f *fixture, url string, chain []*x509.Certificate, key, csrKey crypto.Signer) (int, string, api.Certificate) {
	t.Helper()
	b, _ := json.Marshal(api.RenewRequest{CSR: string(newCSR(t, csrKey, nil))})
	resp, err := httpClient(f, tlsCert(chain, key)).Post(url+api.RenewPath, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.Certificate
	if resp.StatusCode != http.StatusCreated {
		var e api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code, out
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, "", out
}

// TestRenewLostAnswerRedelivered: a renewal whose answer was lost has
// already superseded the old certificate. Its retry (the old certificate,
// a CSR for the same new key) gets the recorded certificate again, so a
// device is not stranded by a dropped connection; nothing else does: a CSR
// for another key, an old certificate the owner revoked, another device's
// old certificate, or the retry after the window.
func TestRenewLostAnswerRedelivered(t *testing.T) {
	f := newFixture(t)
	sub, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, store.Window{NotAfter: f.now.Add(10 * 24 * time.Hour)}, testActor)
	if err != nil {
		t.Fatal(err)
	}
	url := startServer(t, f)
	issue := func() (*Issued, crypto.Signer) {
		key := newKey(t)
		is, err := f.ca.Issue(f.ctx, IssueRequest{TenantID: sub.TenantID, SubID: sub.ID, CSR: newCSR(t, key, nil)})
		if err != nil {
			t.Fatal(err)
		}
		return is, key
	}
	old, oldKey := issue()
	other, otherKey := issue()
	newKey1 := newKey(t)
	status, code, first := postRenew(t, f, url, old.Chain, oldKey, newKey1)
	if status != http.StatusCreated {
		t.Fatalf("renewal: %d %s", status, code)
	}
	// The answer is "lost"; the client sends the identical request again.
	status, code, again := postRenew(t, f, url, old.Chain, oldKey, newKey1)
	if status != http.StatusCreated || again.Serial != first.Serial || again.Chain != first.Chain || again.DeviceID != old.Device.ID {
		t.Fatalf("retry of a lost renewal: %d %s serial %s, want 201 with serial %s", status, code, again.Serial, first.Serial)
	}

	refused := []struct {
		name  string
		chain []*x509.Certificate
		key   crypto.Signer
		csr   crypto.Signer
		after time.Duration
	}{
		{"the old certificate asking for a fresh key", old.Chain, oldKey, newKey(t), 0},
		{"another device's certificate asking for the renewed key", other.Chain, otherKey, newKey1, 0},
		{"the retry after the window", old.Chain, oldKey, newKey1, renewalRedeliveryWindow + time.Minute},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			before := f.counts(f.alice)
			f.now = f.now.Add(c.after)
			defer func() { f.now = f.now.Add(-c.after) }()
			status, code, got := postRenew(t, f, url, c.chain, c.key, c.csr)
			if status == http.StatusCreated && got.Serial == first.Serial {
				t.Fatalf("handed out the renewed certificate: %d", status)
			}
			if c.chain[0] == old.Chain[0] && status == http.StatusCreated {
				t.Fatalf("a superseded certificate got a new one: %d", status)
			}
			if c.chain[0] == old.Chain[0] && f.counts(f.alice) != before {
				t.Fatalf("a refused retry changed the store (%s)", code)
			}
		})
	}

	// The owner revokes the renewed device for key compromise: the old
	// certificate's retry gets nothing any more.
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, old.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	if status, code, _ := postRenew(t, f, url, old.Chain, oldKey, newKey1); status == http.StatusCreated {
		t.Fatalf("retry after the owner revoked the device: %d %s", status, code)
	}
}
