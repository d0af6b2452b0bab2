package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

// fixture is a fresh CA over a fresh SQLite store with one store (tenant)
// "shop" and a protected sub-account "shop:alice" (N=2).
type fixture struct {
	t      testing.TB
	ctx    context.Context
	dir    string
	ca     *Authority
	api    *Server // the API startServer serves
	store  store.Store
	tenant store.Tenant
	alice  store.SubAccount
	now    time.Time
}

var testActor = storetest.Actor

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := Init(caDir, InitOptions{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(caDir)
	if err != nil {
		t.Fatal(err)
	}
	st := sqlitetest.Open(t)
	f := &fixture{t: t, ctx: ctx, dir: dir, store: st, now: time.Now()}
	f.ca, err = New(ctx, keys, st, Options{TrustDomain: "test.local", AllowRSA: true, CRLFile: filepath.Join(caDir, "crl.pem"), Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.tenant = storetest.Tenant(t, st, "shop")
	f.alice = f.protectedSub("alice", 2)
	return f
}

// protectedSub creates a sub-account with phone verification and N devices.
func (f *fixture) protectedSub(name string, n int) store.SubAccount {
	f.t.Helper()
	return f.subIn(f.tenant, name, n)
}

func (f *fixture) subIn(tn store.Tenant, name string, n int) store.SubAccount {
	f.t.Helper()
	return storetest.Protected(f.t, f.store, tn, name, n)
}

func (f *fixture) ticket(s store.SubAccount) string {
	f.t.Helper()
	code, _, err := f.ca.CreateTicket(f.ctx, s.TenantID, s.ID, testActor)
	if err != nil {
		f.t.Fatal(err)
	}
	return code
}

func (f *fixture) issue(s store.SubAccount) *Issued {
	f.t.Helper()
	is, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(s), CSR: newCSR(f.t, newKey(f.t), nil), Label: "pc"})
	if err != nil {
		f.t.Fatal(err)
	}
	return is
}

// counts is what a refused call must leave unchanged.
type counts struct{ devices, audit int }

func (f *fixture) counts(s store.SubAccount) counts {
	f.t.Helper()
	devs, err := f.store.ListDevices(f.ctx, s.TenantID, s.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	evs, err := f.store.ListAudit(f.ctx, s.TenantID, store.AuditFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return counts{len(devs), len(evs)}
}

func newKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCSR returns a PEM CSR; tmpl may carry a subject and SANs to check that
// they are ignored.
func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
