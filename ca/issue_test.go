package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

func TestIssueProducesDeviceCertificate(t *testing.T) {
	f := newFixture(t)
	is := f.issue(f.alice)
	leaf := is.Chain[0]

	opts := x509.VerifyOptions{Roots: f.ca.Keys().RootPool(), Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	opts.Intermediates.AddCert(is.Chain[1])
	if _, err := leaf.Verify(opts); err != nil {
		t.Fatalf("chain does not verify for clientAuth: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: f.ca.Keys().RootPool(), Intermediates: opts.Intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("device certificate verifies for serverAuth")
	}
	p, err := identity.FromCertificate(leaf, "test.local")
	if err != nil {
		t.Fatal(err)
	}
	if p.TenantID != f.tenant.ID || p.SubID != f.alice.ID || p.DeviceID != is.Device.ID {
		t.Fatalf("principal %+v does not name the device", p)
	}
	if leaf.Subject.CommonName != "shop:alice" {
		t.Fatalf("CN = %q", leaf.Subject.CommonName)
	}
	if leaf.SerialNumber.BitLen() < 64 || leaf.SerialNumber.Sign() <= 0 {
		t.Fatalf("serial %v is not a large random positive number", leaf.SerialNumber)
	}
	if got := leaf.NotAfter.Sub(f.now); got > 365*24*time.Hour || got < 364*24*time.Hour {
		t.Fatalf("validity %v, want 365 days", got)
	}
	if is.Installed != 1 || is.Limit != 2 {
		t.Fatalf("installed %d/%d, want 1/2", is.Installed, is.Limit)
	}
	if is.Device.Serial != SerialHex(leaf) || is.Device.Fingerprint != Fingerprint(leaf) {
		t.Fatal("stored serial/fingerprint do not match the certificate")
	}
}

func TestIssueIgnoresCSRIdentity(t *testing.T) {
	f := newFixture(t)
	evil, _ := url.Parse("spiffe://test.local/store/aaaa/sub/bbbb/device/cccc")
	csr := newCSR(t, newKey(t), &x509.CertificateRequest{
		DNSNames:       []string{"bank.example"},
		EmailAddresses: []string{"boss@example.com"},
		IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
		URIs:           []*url.URL{evil},
	})
	is, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	leaf := is.Chain[0]
	if len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 || len(leaf.URIs) != 1 || leaf.URIs[0].String() == evil.String() {
		t.Fatalf("CSR identity leaked into the certificate: %v %v %v %v", leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses, leaf.URIs)
	}
}

func TestIssueAcceptsRSA2048(t *testing.T) {
	f := newFixture(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, k, nil)}); err != nil {
		t.Fatal(err)
	}
	f.ca.opts.AllowRSA = false
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, k, nil)}); !errors.Is(err, ErrRSANotAllowed) {
		t.Fatalf("RSA with allow_rsa off: %v", err)
	}
}

func TestQuotaLimitMessage(t *testing.T) {
	f := newFixture(t)
	f.issue(f.alice)
	f.issue(f.alice)
	code := f.ticket(f.alice)
	before := f.counts(f.alice)
	_, err := f.ca.Issue(f.ctx, IssueRequest{Code: code, CSR: newCSR(t, newKey(t), nil)})
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("third device: %v, want quota exceeded", err)
	}
	e := Explain(err)
	if e.Message != QuotaMessageEN || e.MessageZH != QuotaMessageZH {
		t.Fatalf("limit message %q / %q", e.Message, e.MessageZH)
	}
	if after := f.counts(f.alice); after != before {
		t.Fatalf("refused issue changed the store: %+v -> %+v", before, after)
	}
	// The code was not consumed: after a revocation it works.
	devs, _ := f.store.ListDevices(f.ctx, f.tenant.ID, f.alice.ID)
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, devs[0].ID, store.ReasonCessationOfOperation, testActor); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: code, CSR: newCSR(t, newKey(t), nil)}); err != nil {
		t.Fatalf("code refused after a slot was freed: %v", err)
	}
}

func TestIssueValidityCappedByWindow(t *testing.T) {
	f := newFixture(t)
	end := f.now.Add(10 * 24 * time.Hour).Truncate(time.Second)
	if _, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, store.Window{NotAfter: end}, testActor); err != nil {
		t.Fatal(err)
	}
	is := f.issue(f.alice)
	if !is.Chain[0].NotAfter.Equal(end) {
		t.Fatalf("NotAfter %v, want window end %v", is.Chain[0].NotAfter, end)
	}
}

func rsaCSR(t *testing.T, bits int) []byte {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return newCSR(t, k, nil)
}

func TestIssueRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	other := storetest.Tenant(t, f.store, "other")
	bob := f.subIn(other, "bob", 2)
	good := newCSR(t, newKey(t), nil)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	expiredCode := f.ticket(f.alice)
	usedCode := f.ticket(f.alice)
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: usedCode, CSR: good}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		req  func() IssueRequest
		want error
	}{
		{"malformed CSR", func() IssueRequest {
			return IssueRequest{Code: f.ticket(f.alice), CSR: []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")}
		}, ErrCSRMalformed},
		{"garbage CSR", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: []byte("hello")} }, ErrCSRMalformed},
		{"oversized CSR", func() IssueRequest {
			return IssueRequest{Code: f.ticket(f.alice), CSR: []byte(strings.Repeat("A", MaxCSRBytes+1))}
		}, ErrCSRTooLarge},
		{"certificate instead of CSR", func() IssueRequest {
			return IssueRequest{Code: f.ticket(f.alice), CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Keys().Root.Raw})}
		}, ErrCSRMalformed},
		{"P-384 key", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, p384, nil)} }, ErrUnsupportedKey},
		{"ed25519 key", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, edKey, nil)} }, ErrUnsupportedKey},
		{"RSA 1024", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: rsaCSR(t, 1024)} }, ErrUnsupportedKey},
		{"bad signature", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: tamperCSR(t, good)} }, ErrCSRSignature},
		{"CSR for another key", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: swappedKeyCSR(t)} }, ErrCSRSignature},
		{"unknown code", func() IssueRequest {
			c, _ := newCode()
			return IssueRequest{Code: c, CSR: good}
		}, store.ErrTicketUnknown},
		{"malformed code", func() IssueRequest { return IssueRequest{Code: "DG-1234", CSR: good} }, store.ErrTicketUnknown},
		{"no code, no session", func() IssueRequest { return IssueRequest{CSR: good} }, store.ErrTicketUnknown},
		// (The same code with its own key is a re-delivery: redeliver_test.go.)
		{"used code", func() IssueRequest { return IssueRequest{Code: usedCode, CSR: newCSR(t, newKey(t), nil)} }, store.ErrTicketUsed},
		{"expired code", func() IssueRequest {
			f.now = f.now.Add(31 * time.Minute)
			return IssueRequest{Code: expiredCode, CSR: good}
		}, store.ErrTicketExpired},
		{"other store's code with this store's session", func() IssueRequest {
			return IssueRequest{Code: f.ticket(bob), TenantID: f.tenant.ID, SubID: f.alice.ID, CSR: good}
		}, store.ErrTicketUnknown},
		{"session of one store naming another store's sub-account", func() IssueRequest {
			return IssueRequest{TenantID: f.tenant.ID, SubID: bob.ID, CSR: good}
		}, store.ErrNotFound},
		{"unknown sub-account", func() IssueRequest { return IssueRequest{TenantID: f.tenant.ID, SubID: store.NewID(), CSR: good} }, store.ErrNotFound},
		// After the ticket TTL (the expired code moved the clock): no longer a re-delivery.
		{"replayed CSR (its key already has a device)", func() IssueRequest { return IssueRequest{Code: f.ticket(f.alice), CSR: good} }, store.ErrKeyInUse},
		{"the same key in another store", func() IssueRequest { return IssueRequest{Code: f.ticket(bob), CSR: good} }, store.ErrKeyInUse},
		{"label with control characters", func() IssueRequest {
			return IssueRequest{Code: f.ticket(f.alice), CSR: good, Label: "pc\x00\x1b[31m"}
		}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			before, beforeBob := f.counts(f.alice), f.counts(bob)
			_, err := f.ca.Issue(f.ctx, req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if Explain(err).Status >= 500 {
				t.Fatalf("client error mapped to %d", Explain(err).Status)
			}
			if after, afterBob := f.counts(f.alice), f.counts(bob); after != before || afterBob != beforeBob {
				t.Fatalf("refused issue changed the store: %+v -> %+v, %+v -> %+v", before, after, beforeBob, afterBob)
			}
		})
	}
}

func TestIssueRefusesIneligibleSubAccounts(t *testing.T) {
	f := newFixture(t)
	unprotected, err := f.store.CreateSubAccount(f.ctx, store.NewSubAccount{TenantID: f.tenant.ID, Name: "plain", Role: "other", PasswordHash: "x"}, testActor)
	if err != nil {
		t.Fatal(err)
	}
	frozen := f.protectedSub("frozen", 2)
	if _, _, err := f.store.SetStatus(f.ctx, f.tenant.ID, frozen.ID, store.StatusFrozen, testActor); err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.SubAccount{unprotected, frozen} {
		_, err := f.ca.Issue(f.ctx, IssueRequest{TenantID: f.tenant.ID, SubID: s.ID, CSR: newCSR(t, newKey(t), nil)})
		if !errors.Is(err, store.ErrNotEligible) {
			t.Errorf("%s: got %v, want not eligible", s.Name, err)
		}
	}
}

// tamperCSR flips a bit in the signature of a PEM CSR.
func tamperCSR(t *testing.T, p []byte) []byte {
	block, _ := pem.Decode(p)
	der := append([]byte(nil), block.Bytes...)
	der[len(der)-5] ^= 0x01
	return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
}
