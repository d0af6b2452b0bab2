package proxy

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

// A proxy reading the store reports the seq it applied under its name
// right after each change (not at the next heartbeat), exports it as
// devicegate_proxy_applied_seq{proxy=...}, and Run stops its reporter.
func TestPolicyReportsAppliedSeqToStore(t *testing.T) {
	st := sqlitetest.Open(t)
	catalog, _ := config.DefaultCatalog()
	p := NewPolicy(st, catalog, slog.New(slog.DiscardHandler))
	p.ReportTo(StoreReporter{Store: st, Name: "core-1"})
	reg := prometheus.NewRegistry()
	RegisterAppliedSeq(reg, p, "core-1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, time.Hour) }() // only kicks sync: no poll

	tn := storetest.Tenant(t, st, "shop")
	storetest.Protected(t, st, tn, "alice", 1)
	want, err := st.CurrentSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Kick()
	var got store.ProxyReport
	for got.Seq < want {
		if time.Since(start) > api.PolicyAckEvery/2 {
			t.Fatalf("no report of seq %d within half a heartbeat (last %+v)", want, got)
		}
		list, err := st.ListProxyReports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			got = list[0]
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got.Name != "core-1" || got.Via != store.ViaStore || got.Heartbeat != api.PolicyAckEvery {
		t.Fatalf("report %+v, want core-1 via store", got)
	}
	if v := appliedSeqMetric(t, reg, "core-1"); v != float64(want) {
		t.Fatalf("devicegate_proxy_applied_seq{proxy=core-1} = %v, want %d", v, want)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return (its reporter did not stop)")
	}
}

// appliedSeqMetric gathers devicegate_proxy_applied_seq with label proxy=name.
func appliedSeqMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "devicegate_proxy_applied_seq" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "proxy" && l.GetValue() == name {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no devicegate_proxy_applied_seq{proxy=%q}", name)
	return 0
}
