package storetest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// ProxyReports: a proxy's applied seq and last report only move forward
// (reports can arrive out of order through two CA nodes), applied_at moves
// with the seq, liveness is 3 heartbeats, bad reports change nothing, and
// concurrent reports keep the highest seq.
func testProxyReports(t *testing.T, e *env) {
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	report := func(name string, seq int64, at time.Time) {
		t.Helper()
		if err := e.st.ReportProxy(e.ctx, store.ProxyReport{Name: name, Seq: seq, SeenAt: at, Heartbeat: time.Second, Via: store.ViaStore}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) store.ProxyReport {
		t.Helper()
		list, err := e.st.ListProxyReports(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no report of %s in %v", name, list)
		return store.ProxyReport{}
	}

	steps := []struct {
		name               string
		seq                int64
		at                 time.Time
		wantSeq            int64
		wantSeen, wantAppl time.Time
	}{
		{"first report", 5, t0, 5, t0, t0},
		{"heartbeat with an older seq keeps the seq", 3, t0.Add(time.Second), 5, t0.Add(time.Second), t0},
		{"same seq: only seen moves", 5, t0.Add(2 * time.Second), 5, t0.Add(2 * time.Second), t0},
		{"newer seq moves applied_at", 7, t0.Add(3 * time.Second), 7, t0.Add(3 * time.Second), t0.Add(3 * time.Second)},
		{"a late report changes nothing", 6, t0.Add(-time.Second), 7, t0.Add(3 * time.Second), t0.Add(3 * time.Second)},
	}
	for _, s := range steps {
		report("edge-a", s.seq, s.at)
		r := get("edge-a")
		if r.Seq != s.wantSeq || !r.SeenAt.Equal(s.wantSeen) || !r.AppliedAt.Equal(s.wantAppl) || r.Heartbeat != time.Second || r.Via != store.ViaStore {
			t.Fatalf("%s: got %+v, want seq %d seen %v applied %v", s.name, r, s.wantSeq, s.wantSeen, s.wantAppl)
		}
	}
	r := get("edge-a")
	last := t0.Add(3 * time.Second)
	if !r.LiveAt(last.Add(store.LiveHeartbeats*time.Second)) || r.LiveAt(last.Add(store.LiveHeartbeats*time.Second+time.Microsecond)) {
		t.Fatal("live means heard from within 3 heartbeats")
	}

	bad := []store.ProxyReport{
		{Seq: 9, SeenAt: t0, Heartbeat: time.Second, Via: store.ViaStore},                                          // no name
		{Name: strings.Repeat("x", 257), Seq: 9, SeenAt: t0, Heartbeat: time.Second, Via: store.ViaStore},          // name too long
		{Name: "edge-a", Seq: -1, SeenAt: t0, Heartbeat: time.Second, Via: store.ViaStore},                         // negative seq
		{Name: "edge-a", Seq: 9, Heartbeat: time.Second, Via: store.ViaStore},                                      // no time
		{Name: "edge-a", Seq: 9, SeenAt: t0, Via: store.ViaStore},                                                  // no heartbeat
		{Name: "edge-a", Seq: 9, SeenAt: t0, Heartbeat: store.MaxProxyHeartbeat + time.Second, Via: store.ViaFeed}, // heartbeat too long
		{Name: "edge-a", Seq: 9, SeenAt: t0, Heartbeat: time.Second, Via: "carrier pigeon"},                        // unknown source
	}
	for i, b := range bad {
		if err := e.st.ReportProxy(e.ctx, b); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad report %d: %v, want ErrInvalid", i, err)
		}
	}
	if got := get("edge-a"); got != r {
		t.Fatalf("a refused report changed the row: %+v -> %+v", r, got)
	}

	// Another proxy, reported concurrently with many seqs: the highest wins.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := e.st.ReportProxy(e.ctx, store.ProxyReport{Name: "core-b", Seq: int64(i), SeenAt: t0, Heartbeat: 2 * time.Second, Via: store.ViaFeed}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	list, err := e.st.ListProxyReports(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "core-b" || list[1].Name != "edge-a" {
		t.Fatalf("list %+v, want core-b then edge-a", list)
	}
	if list[0].Seq != 19 || list[0].Via != store.ViaFeed || list[0].Heartbeat != 2*time.Second {
		t.Fatalf("concurrent reports: %+v, want seq 19 via feed", list[0])
	}
}
