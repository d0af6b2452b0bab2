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
		if _, reason := snap.Check(cert.Leaf, td, "orders.sold", now); reason != ReasonCertificateValid {
			b.Fatal(reason)
		}
	}
}
