package proxy

import (
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
)

// BenchmarkSnapshotCheck is the per-request policy check of a high-risk
// path (identity, current serial, device, sub-account, permission).
func BenchmarkSnapshotCheck(b *testing.B) {
	e := newEnv(b, time.Minute)
	cert := e.device("alice", testpki.LeafOptions{})
	snap := e.policy.Snapshot()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, reason := snap.Check(cert.Leaf, td, "orders.sold", now); reason != ReasonAllowed {
			b.Fatal(reason)
		}
	}
}

// BenchmarkSnapshotCheckPeer is the check as the fast path runs it: the
// certificate's identity was read once for the connection, so each request
// only looks up the current serial, device, sub-account and permission.
func BenchmarkSnapshotCheckPeer(b *testing.B) {
	snap, p, now := peerCheckFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, reason := snap.checkPeer(p, "orders.sold", now); reason != ReasonAllowed {
			b.Fatal(reason)
		}
	}
}

// The fast path's check allocates nothing.
func TestCheckPeerDoesNotAllocate(t *testing.T) {
	snap, p, now := peerCheckFixture(t)
	if n := testing.AllocsPerRun(100, func() { snap.checkPeer(p, "orders.sold", now) }); n != 0 {
		t.Fatalf("%v allocations per check", n)
	}
}

// peerCheckFixture: alice's enrolled device as a connection's peer.
func peerCheckFixture(t testing.TB) (*Snapshot, *peer, time.Time) {
	e := newEnv(t, time.Minute)
	cert := e.device("alice", testpki.LeafOptions{})
	return e.policy.Snapshot(), newPeer(cert.Leaf, td), time.Now()
}
