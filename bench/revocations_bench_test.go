package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/devicegate/devicegate/bench/revokedrows"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

// BenchmarkPolicyCheckRevoked measures the proxy's policy after loading a
// store with 0 or 1,000,000 revoked certificates: the heap the snapshot
// needs and the per-request check (which must not slow down).
func BenchmarkPolicyCheckRevoked(b *testing.B) {
	for _, revoked := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("revoked=%d", revoked), func(b *testing.B) {
			ctx := context.Background()
			st := sqlitetest.Open(b)
			t := storetest.Tenant(b, st, "shop")
			s := storetest.Protect(b, st, storetest.Sub(b, st, store.NewSubAccount{TenantID: t.ID, Name: "alice", Role: "customer-service"}), 5)
			pki := testpki.New(b)
			devID := store.NewID()
			leaf, _ := pki.Leaf(b, testpki.LeafOptions{URIs: []string{identity.Principal{TrustDomain: "bench.local", TenantID: t.ID, SubID: s.ID, DeviceID: devID}.URI().String()}})
			if _, _, err := st.IssueDevice(ctx, store.IssueRequest{TenantID: t.ID, SubID: s.ID, DeviceID: devID, Serial: leaf.SerialNumber.Text(16),
				Fingerprint: "00", IssuedAt: leaf.NotBefore, ExpiresAt: leaf.NotAfter, Now: time.Now()}, actor); err != nil {
				b.Fatal(err)
			}
			if err := revokedrows.Insert(ctx, st.SQL(), t.ID, s.ID, revoked); err != nil {
				b.Fatal(err)
			}
			catalog, _ := config.DefaultCatalog()
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			policy := proxy.NewPolicy(st, catalog, slog.New(slog.DiscardHandler))
			if err := policy.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			snap := policy.Snapshot()
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, reason := snap.Check(leaf, "bench.local", "orders.sold", now); reason != proxy.ReasonAllowed {
					b.Fatal(reason)
				}
			}
			b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "snapshot-MB")
		})
	}
}
