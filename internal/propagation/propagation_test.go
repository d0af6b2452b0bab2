package propagation

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

// Wait counts the proxies live when it starts: it returns once they have
// all applied the seq (a departed one is not waited for), and names the
// one behind when its context ends first.
func TestWait(t *testing.T) {
	st := sqlitetest.Open(t)
	ctx := context.Background()
	now := time.Now()
	report := func(name string, seq int64, at time.Time) {
		t.Helper()
		if err := st.ReportProxy(ctx, store.ProxyReport{Name: name, Seq: seq, SeenAt: at, Heartbeat: time.Second, Via: store.ViaStore}); err != nil {
			t.Fatal(err)
		}
	}
	report("a", 5, now)
	report("b", 3, now)
	report("gone", 1, now.Add(-time.Hour))

	tests := []struct {
		name    string
		seq     int64
		timeout time.Duration
		want    string
		wantErr bool
	}{
		{"every live proxy has it", 3, time.Second, "applied on 2/2 proxies", false},
		{"one behind until the timeout", 5, 50 * time.Millisecond, "applied on 1/2 proxies; not yet on b", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wctx, cancel := context.WithTimeout(ctx, tc.timeout)
			defer cancel()
			p, err := Wait(wctx, st, tc.seq, nil, func() time.Duration { return 5 * time.Millisecond })
			if (err != nil) != tc.wantErr || p.String() != tc.want {
				t.Fatalf("Wait: %q, %v; want %q (error %v)", p, err, tc.want, tc.wantErr)
			}
		})
	}

	// Woken by the report that brings b up to date.
	wake := make(chan struct{}, 1)
	go func() {
		report("b", 5, time.Now())
		wake <- struct{}{}
	}()
	p, err := Wait(ctx, st, 5, wake, func() time.Duration { return time.Hour })
	if err != nil || p.String() != "applied on 2/2 proxies" {
		t.Fatalf("Wait after b's report: %q, %v", p, err)
	}
}

// The tracker observes a revocation once every live proxy has its seq,
// not before, and not the revocations made before it started.
func TestTrackerObservesPropagation(t *testing.T) {
	st := sqlitetest.Open(t)
	ctx := context.Background()
	tn := storetest.Tenant(t, st, "shop")
	sub := storetest.Protected(t, st, tn, "alice", 3)
	serial := 0
	dev := func() store.Device {
		t.Helper()
		serial++
		now := time.Now()
		d, _, err := st.IssueDevice(ctx, store.IssueRequest{TenantID: tn.ID, SubID: sub.ID, DeviceID: store.NewID(), Serial: fmt.Sprintf("%x", 0x1000+serial),
			Fingerprint: "00", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Now: now}, storetest.Actor)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	old := dev()
	if _, err := st.RevokeDevice(ctx, tn.ID, old.ID, store.ReasonKeyCompromise, storetest.Actor); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tr := NewTracker(st, reg)
	cur, _ := st.CurrentSeq(ctx)
	tr.after = cur
	d := dev()
	rv, err := st.RevokeDevice(ctx, tn.ID, d.ID, store.ReasonKeyCompromise, storetest.Actor)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, name := range []string{"a", "b"} {
		if err := st.ReportProxy(ctx, store.ProxyReport{Name: name, Seq: rv.Seq - 1, SeenAt: now, Heartbeat: time.Second, Via: store.ViaStore}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() uint64 {
		t.Helper()
		if err := tr.check(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		fams, _ := reg.Gather()
		for _, f := range fams {
			if f.GetName() == "devicegate_revocation_propagation_seconds" {
				return f.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		t.Fatal("no devicegate_revocation_propagation_seconds")
		return 0
	}
	if n := count(); n != 0 {
		t.Fatalf("observed %d before any proxy had the revocation", n)
	}
	_ = st.ReportProxy(ctx, store.ProxyReport{Name: "a", Seq: rv.Seq, SeenAt: time.Now(), Heartbeat: time.Second, Via: store.ViaStore})
	if n := count(); n != 0 {
		t.Fatalf("observed %d with proxy b behind", n)
	}
	_ = st.ReportProxy(ctx, store.ProxyReport{Name: "b", Seq: rv.Seq, SeenAt: time.Now(), Heartbeat: time.Second, Via: store.ViaStore})
	if n := count(); n != 1 {
		t.Fatalf("observed %d after every proxy had it, want 1 (only the revocation made while tracking)", n)
	}
}
