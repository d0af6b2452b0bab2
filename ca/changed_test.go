package ca

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Changed (a PostgreSQL notification of another node's change) makes a
// running authority read the new revocations at once: its OCSP set and the
// feeds' wake-up follow before the next tick, not up to 250 ms later. In a
// bubble, the tick runs on the bubble's clock, which moves only once the
// sync Changed asks for has finished or was never started: with Changed
// doing nothing, the half-tick timeout below fires first.
func TestChangedSyncsBeforeTheTick(t *testing.T) {
	a := newFixture(t) // node a; node b shares its keys and store
	dev := a.issue(a.alice)
	keys, err := LoadKeys(filepath.Join(a.dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		b, err := New(ctx, keys, a.store, Options{TrustDomain: "test.local", CRLFile: filepath.Join(a.dir, "b.crl.pem")})
		if err != nil {
			t.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() { b.Run(ctx); close(stopped) }()
		defer func() { cancel(); <-stopped }()
		_, moved := b.revs.wait()
		if _, err := a.ca.RevokeDevice(ctx, a.tenant.ID, dev.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
			t.Fatal(err)
		}
		b.Changed()
		select {
		case <-moved:
		case <-time.After(crlTick / 2):
			t.Fatal("node b had not read node a's revocation half a tick after Changed")
		}
		if _, ok := b.revs.lookup(SerialHex(dev.Chain[0])); !ok {
			t.Fatal("node b's revocation set lacks the serial node a revoked")
		}
	})
}
