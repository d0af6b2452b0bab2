package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/store"
)

// A burst of revocations while the CA runs is signed into far fewer CRLs
// than revocations, yet OCSP and the feed's seq see each revocation at
// once, and the CRL (served and on disk) lists all of them soon after:
// one CRL tick plus the build (signing, writing the file); the test allows
// 5 s for a loaded machine.
func TestCRLRebuildCoalescesBursts(t *testing.T) {
	f := newFixture(t)
	const n = 50
	var devs []*Issued
	for i := range n / 5 {
		sub := f.protectedSub(fmt.Sprintf("burst%d", i), 5)
		for range 5 {
			devs = append(devs, f.issue(sub))
		}
	}
	ctx, cancel := context.WithCancel(f.ctx)
	stopped := make(chan struct{})
	go func() { f.ca.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	for !f.ca.revs.running.Load() {
		time.Sleep(time.Millisecond)
	}

	before := f.ca.revs.builds.Load()
	start := time.Now()
	for _, d := range devs {
		rv, err := f.ca.RevokeDevice(f.ctx, d.Device.TenantID, d.Device.ID, store.ReasonKeyCompromise, testActor)
		if err != nil {
			t.Fatal(err)
		}
		if got := ocspStatusOf(t, f, d.Chain[0]); got.Status != ocsp.Revoked {
			t.Fatalf("OCSP right after the revocation of %s: status %d, want revoked", d.Device.ID, got.Status)
		}
		if seq, _ := f.ca.revs.wait(); seq < rv.Seq {
			t.Fatalf("feed seq %d right after revocation seq %d", seq, rv.Seq)
		}
	}
	revoked := time.Since(start)

	deadline := time.Now().Add(5 * time.Second)
	for !crlListsAll(t, f, devs) {
		if time.Now().After(deadline) {
			t.Fatal("the CRL does not list every revoked certificate 5 s after the burst")
		}
		time.Sleep(10 * time.Millisecond)
	}
	behind := time.Since(start) - revoked
	builds := f.ca.revs.builds.Load() - before
	t.Logf("%d revocations in %v, %d CRL signatures, CRL complete %v after the last revocation", n, revoked.Round(time.Millisecond), builds, behind.Round(time.Millisecond))
	if limit := int64(revoked/crlTick) + 2; builds > limit || builds >= n/2 {
		t.Fatalf("%d CRL signatures for %d revocations in %v, want at most %d", builds, n, revoked, limit)
	}
}

// crlListsAll reports whether both the served CRL and the CRL file list
// every device's certificate.
func crlListsAll(t *testing.T, f *fixture, devs []*Issued) bool {
	t.Helper()
	served := parseCRL(t, f)
	data, err := os.ReadFile(f.ca.opts.CRLFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	file, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		_, inServed := crlHas(served, d.Chain[0].SerialNumber)
		_, inFile := crlHas(file, d.Chain[0].SerialNumber)
		if !inServed || !inFile {
			return false
		}
	}
	return true
}
