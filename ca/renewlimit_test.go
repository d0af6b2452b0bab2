package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// renewOverHTTP renews the certificate chain/key over mTLS with a new key and
// returns the status, the error body and, on success, the new chain and key.
func renewOverHTTP(t *testing.T, f *fixture, url string, is *Issued, key crypto.Signer) (int, http.Header, api.Error, *Issued, crypto.Signer) {
	t.Helper()
	newKey := newKey(t)
	b, _ := json.Marshal(map[string]string{"csr": string(newCSR(t, newKey, nil))})
	resp, err := httpClient(f, tlsCert(is.Chain, key)).Post(url+"/v1/renew", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		var out api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header, out.Error, nil, nil
	}
	var out api.Certificate
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	chain := parseChainPEM(t, out.Chain)
	return resp.StatusCode, resp.Header, api.Error{}, &Issued{Device: store.Device{ID: out.DeviceID, Serial: out.Serial}, Chain: chain}, newKey
}

// A device renewing in a loop is stopped after maxRenewals within
// renewalWindow (429, Retry-After, JSON code), and the CRL grows by exactly
// the renewals allowed. The sub-account is a temporary one whose window
// ends in 10 days, so every certificate is near its end and the too-early
// rule does not apply: only the rate limit stands between the loop and the
// CRL. After the window the device may renew again.
func TestRenewLoopIsRateLimited(t *testing.T) {
	f := newFixture(t)
	sub, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, store.Window{NotAfter: f.now.Add(10 * 24 * time.Hour)}, testActor)
	if err != nil {
		t.Fatal(err)
	}
	url := startServer(t, f)
	key := newKey(t)
	cur, err := f.ca.Issue(f.ctx, IssueRequest{TenantID: sub.TenantID, SubID: sub.ID, CSR: newCSR(t, key, nil)})
	if err != nil {
		t.Fatal(err)
	}
	crlBefore := len(parseCRL(t, f).RevokedCertificateEntries)

	renewed := 0
	for i := range 2 * maxRenewals {
		status, hdr, e, next, nextKey := renewOverHTTP(t, f, url, cur, key)
		if status == http.StatusCreated {
			renewed++
			cur, key = next, nextKey
			continue
		}
		retry, _ := strconv.Atoi(hdr.Get("Retry-After"))
		if status != http.StatusTooManyRequests || e.Code != "renew_rate_limited" || retry <= 0 || retry > int(renewalWindow.Seconds())+1 {
			t.Fatalf("renewal %d: %d %+v Retry-After %q, want 429 renew_rate_limited with Retry-After", i, status, e, hdr.Get("Retry-After"))
		}
	}
	if renewed != maxRenewals {
		t.Fatalf("%d renewals went through, want %d", renewed, maxRenewals)
	}
	if grown := len(parseCRL(t, f).RevokedCertificateEntries) - crlBefore; grown != maxRenewals {
		t.Fatalf("CRL grew by %d entries, want %d", grown, maxRenewals)
	}
	// The current certificate still works once the window is over.
	f.now = f.now.Add(renewalWindow + time.Minute)
	if status, _, e, _, _ := renewOverHTTP(t, f, url, cur, key); status != http.StatusCreated {
		t.Fatalf("renewal after the window: %d %+v", status, e)
	}
}

// A certificate far from its end is not renewed (nothing changes); the
// same certificate renews once it is within renewBefore of its end.
func TestRenewOnlyNearExpiry(t *testing.T) {
	f := newFixture(t)
	issued := f.now
	for _, tc := range []struct {
		name string
		at   time.Time // the CA's clock
		ok   bool
	}{
		{"just issued", issued, false},
		{"two months left", issued.Add(f.ca.opts.Validity - 60*24*time.Hour), false},
		{"31 days left", issued.Add(f.ca.opts.Validity - 31*24*time.Hour), false},
		{"29 days left", issued.Add(f.ca.opts.Validity - 29*24*time.Hour), true},
		{"one day left", issued.Add(f.ca.opts.Validity - 24*time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.now = issued
			old := f.issue(f.alice)
			defer f.ca.RevokeDevice(f.ctx, f.tenant.ID, old.Device.ID, store.ReasonUnspecified, testActor) //nolint:errcheck // frees the slot
			f.now = tc.at
			before, crl := f.counts(f.alice), len(parseCRL(t, f).RevokedCertificateEntries)
			renewed, err := f.ca.Renew(f.ctx, old.Chain[0], newCSR(t, newKey(t), nil))
			if tc.ok {
				if err != nil || renewed.Device.ID != old.Device.ID {
					t.Fatalf("renew near expiry: %v", err)
				}
				return
			}
			var early *RenewTooEarlyError
			if !errors.As(err, &early) || early.From.After(old.Chain[0].NotAfter) {
				t.Fatalf("renew far from expiry: %v, want *RenewTooEarlyError", err)
			}
			if e := Explain(err); e.Status != http.StatusForbidden || e.Code != "renew_too_early" {
				t.Fatalf("answer %+v", e)
			}
			dev, _ := f.store.GetDevice(f.ctx, f.tenant.ID, old.Device.ID)
			if dev.Serial != old.Device.Serial || f.counts(f.alice) != before || len(parseCRL(t, f).RevokedCertificateEntries) != crl {
				t.Fatal("a refused renewal changed the device, the audit log or the CRL")
			}
		})
	}
}

func parseChainPEM(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for rest := []byte(s); ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return chain
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
}
