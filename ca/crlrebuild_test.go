package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/storetest"
)

// The CRL is signed again when the set of revoked certificates changes,
// whoever revoked them (this CA or another process on the store), and
// only then: issuances, sub-account edits and proxy certificates move the
// store's seq but leave the CRL (number and signature) as it is. Each
// step runs what a Run tick runs (refresh).
func TestCRLIsSignedOnlyWhenRevocationsChange(t *testing.T) {
	f := newFixture(t)
	dev, renewing, other := f.issue(f.alice), f.issue(f.protectedSub("bob", 2)), f.issue(f.protectedSub("carol", 2))
	edge := f.proxyCert("edge-1", only(f.tenant.ID))
	steps := []struct {
		name    string
		do      func() error
		revoked *x509.Certificate // now on the CRL and revoked over OCSP; nil: the CRL stays the same
	}{
		{"issuance", func() error {
			_, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, newKey(t), nil)})
			return err
		}, nil},
		{"sub-account edit", func() error {
			_, err := f.store.SetProtection(f.ctx, f.tenant.ID, f.alice.ID, store.Protection{Enabled: true, MaxDevices: 3}, testActor)
			return err
		}, nil},
		{"proxy certificate issued", func() error { f.proxyCert("edge-2", only(f.tenant.ID)); return nil }, nil},
		{"sub-account restored without revocations", func() error {
			_, _, err := f.ca.SetStatus(f.ctx, f.tenant.ID, f.alice.ID, store.StatusActive, testActor)
			return err
		}, nil},
		{"device revoked through this CA", func() error {
			_, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, other.Device.ID, store.ReasonKeyCompromise, testActor)
			return err
		}, other.Chain[0]},
		{"device revoked by another process", func() error {
			_, err := f.store.RevokeDevice(f.ctx, f.tenant.ID, dev.Device.ID, store.ReasonKeyCompromise, testActor)
			return err
		}, dev.Chain[0]},
		{"device renewed by another node (old serial superseded)", func() error {
			leaf := renewing.Chain[0]
			_, _, err := f.store.RenewDevice(f.ctx, store.RenewRequest{TenantID: f.tenant.ID, DeviceID: renewing.Device.ID, OldSerial: renewing.Device.Serial,
				Serial: "7e57", Fingerprint: "00", KeyID: keyIDOf([]byte("renewed")), IssuedAt: f.now, ExpiresAt: leaf.NotAfter, Now: f.now}, testActor)
			return err
		}, renewing.Chain[0]},
		{"proxy revoked by another process", func() error {
			_, err := f.store.RevokeProxyCerts(f.ctx, "edge-1", store.ReasonKeyCompromise, f.now)
			return err
		}, edge.chain[0]},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			before, builds := parseCRL(t, f), f.ca.revs.builds.Load()
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			if err := f.ca.revs.refresh(f.ctx); err != nil {
				t.Fatal(err)
			}
			after := parseCRL(t, f)
			if tc.revoked == nil {
				if after.Number.Cmp(before.Number) != 0 || f.ca.revs.builds.Load() != builds {
					t.Fatalf("CRL signed again (number %v -> %v) without a new revocation", before.Number, after.Number)
				}
				return
			}
			if after.Number.Cmp(before.Number) <= 0 {
				t.Fatalf("CRL number %v -> %v after a revocation", before.Number, after.Number)
			}
			if _, listed := crlHas(after, tc.revoked.SerialNumber); !listed {
				t.Fatalf("serial %x not on the CRL", tc.revoked.SerialNumber)
			}
			if got := ocspStatusOf(t, f, tc.revoked); got.Status != ocsp.Revoked {
				t.Fatalf("OCSP status %d, want revoked", got.Status)
			}
		})
	}
}

// A CRL is signed again once it is in the last third of its validity (a
// reader must never hold an expired one), with every revoked serial, and
// not a moment earlier.
func TestCRLIsSignedAgainBeforeItsNextUpdate(t *testing.T) {
	f := newFixture(t)
	gone := f.issue(f.alice)
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, gone.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	first := parseCRL(t, f)
	resignAt := f.ca.revs.nextUpdate.Add(-f.ca.opts.CRLValidity / 3) // the CRL's own is cut to seconds
	for _, tc := range []struct {
		name   string
		at     time.Time
		resign bool
	}{
		{"two thirds of the validity left", first.ThisUpdate.Add(f.ca.opts.CRLValidity / 3), false},
		{"a minute before the last third", resignAt.Add(-time.Minute), false},
		{"the last third begins", resignAt, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.now = tc.at
			if err := f.ca.revs.refresh(f.ctx); err != nil {
				t.Fatal(err)
			}
			crl := parseCRL(t, f)
			if !tc.resign {
				if crl.Number.Cmp(first.Number) != 0 {
					t.Fatalf("CRL signed again at %v, %v before its next update", tc.at, first.NextUpdate.Sub(tc.at))
				}
				return
			}
			if crl.Number.Cmp(first.Number) <= 0 || !crl.NextUpdate.Equal(tc.at.Add(f.ca.opts.CRLValidity).Truncate(time.Second)) {
				t.Fatalf("CRL not signed again: number %v -> %v, next update %v", first.Number, crl.Number, crl.NextUpdate)
			}
			if _, listed := crlHas(crl, gone.Chain[0].SerialNumber); !listed {
				t.Fatal("the re-signed CRL lost a revoked serial")
			}
		})
	}
}

// Two CA nodes on one PostgreSQL database: a revocation made through one
// (a device, a proxy certificate) reaches the other's CRL within its Run
// tick and its OCSP at once; an issuance through one changes the CRL of
// neither.
func TestCRLFollowsRevocationsOfAnotherNode(t *testing.T) {
	a, b := postgresNodes(t)
	ctx, cancel := context.WithCancel(b.ctx)
	stopped := make(chan struct{})
	go func() { b.ca.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })

	// An issuance through a: b notices the seq move and signs nothing.
	number, _ := b.ca.revs.crlWait()
	builds := b.ca.revs.builds.Load()
	_, moved := b.ca.revs.wait()
	dev := a.issue(a.alice)
	awaitClosed(t, moved, "node b did not notice the issuance")
	if err := b.ca.revs.refresh(b.ctx); err != nil { // what Run's tick did or is doing
		t.Fatal(err)
	}
	if n, _ := b.ca.revs.crlWait(); n != number || b.ca.revs.builds.Load() != builds {
		t.Fatalf("node b signed its CRL again (number %d -> %d) for an issuance on node a", number, n)
	}

	edge := a.proxyCert("edge-1", only(a.tenant.ID))
	for _, tc := range []struct {
		name   string
		revoke func() error
		cert   *x509.Certificate
	}{
		{"device", func() error {
			_, err := a.ca.RevokeDevice(a.ctx, a.tenant.ID, dev.Device.ID, store.ReasonKeyCompromise, testActor)
			return err
		}, dev.Chain[0]},
		{"proxy certificate", func() error {
			_, err := a.ca.RevokeProxy(a.ctx, "edge-1", store.ReasonKeyCompromise)
			return err
		}, edge.chain[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			if err := tc.revoke(); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(5 * time.Second) // one 250 ms tick on an idle machine
			for {
				_, signed := b.ca.revs.crlWait()
				if _, listed := crlHas(parseCRL(t, b), tc.cert.SerialNumber); listed {
					break
				}
				select {
				case <-signed:
				case <-deadline:
					t.Fatal("node b's CRL lacks the revocation 5 s after node a made it")
				}
			}
			t.Logf("on node b's CRL %v after node a revoked", time.Since(start).Round(time.Millisecond))
			if got := ocspStatusOf(t, b, tc.cert); got.Status != ocsp.Revoked {
				t.Fatalf("node b's OCSP status %d, want revoked", got.Status)
			}
		})
	}
}

// postgresNodes are two CA nodes with the same keys over one fresh
// PostgreSQL database, each with its own connections (as two processes),
// and one store "shop" with a protected sub-account "alice" (N=2).
func postgresNodes(t *testing.T) (a, b *fixture) {
	t.Helper()
	dsn := pgtest.Start(t).NewDatabase(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := Init(filepath.Join(dir, "ca"), InitOptions{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	node := func(name string) *fixture {
		keys, err := LoadKeys(filepath.Join(dir, "ca"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := postgres.Open(ctx, dsn, store.Options{SealKey: seal})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		f := &fixture{t: t, ctx: ctx, dir: dir, store: st, now: time.Now()}
		f.ca, err = New(ctx, keys, st, Options{TrustDomain: "test.local", CRLFile: filepath.Join(dir, name+".crl.pem")})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b = node("a"), node("b")
	a.tenant = storetest.Tenant(t, a.store, "shop")
	a.alice = a.protectedSub("alice", 2)
	b.tenant, b.alice = a.tenant, a.alice
	return a, b
}

// awaitClosed waits for ch to close, failing the test after 5 s.
func awaitClosed(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(msg)
	}
}
