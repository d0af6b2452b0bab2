package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestMultiNodeRevokeWait runs three proxies as processes on one real
// PostgreSQL and the operator's CLI beside them:
//   - AppliedOnEveryProxy: `device revoke --wait` and `sub depart --wait`
//     print "applied on 3/3 proxies in N ms" (names: <host>-<port>).
//   - DepartedProxyNotWaitedFor: a proxy last heard of long ago is not
//     counted.
//   - Propagation: DEVICEGATE_REVOKEWAIT_REVOCATIONS revocations (default
//     100; 1000 for the figure), each `revoke --wait` timed by the
//     CLI from its revocation call to the last proxy's report; p50 and p99
//     logged (goal p99 < 200 ms).
//   - StoppedProxyNamed: a proxy killed just before the revocation is
//     still live by its last heartbeat, so the wait times out naming it
//     and the CLI exits non-zero.
func TestMultiNodeRevokeWait(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	m := &multiNode{bin: buildBinary(t), dir: t.TempDir()}
	bo := httptest.NewServer(backoffice.New(nil))
	t.Cleanup(bo.Close)
	cfgA := m.nodeConfig(t, "ca-a", fmt.Sprintf("data_dir: data\nlog: {level: warn}\ndatabase: {driver: postgres, dsn: %q}\n", dsn))
	a, shop, kim := protectedShop(t, cfgA, "finance", 5)
	t.Cleanup(func() { a.Close() })
	proxyConf := fmt.Sprintf(`data_dir: data
log: {level: warn}
database: {driver: postgres, dsn: %q}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  upstreams:
    - {name: backoffice, url: %q, hosts: [localhost, 127.0.0.1], binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}}
`, dsn, bo.URL, bo.URL+"/whoami")
	var procs []*faultProc
	var names []string
	for i := range 3 {
		cfg := m.nodeConfig(t, fmt.Sprintf("proxy-%d", i+1), proxyConf)
		p := startProc(t, m.bin, filepath.Join(filepath.Dir(cfg), "node.log"), []string{"proxy_url", "metrics_url", "proxy_name"}, "proxy", "--config", cfg)
		procs, names = append(procs, p), append(names, p.urls["proxy_name"])
	}
	if distinct := slices.Compact(slices.Sorted(slices.Values(names))); len(distinct) != 3 {
		t.Fatalf("proxy names %v are not distinct", names)
	}
	ctx := context.Background()
	var lastID string
	revoke := func(t *testing.T, extra ...string) (int, string, string) {
		t.Helper()
		_, lastID = faultDevice(t, ctx, a.ca, shop.ID, kim.ID, nil)
		return cli(t, append([]string{"admin", "--config", cfgA, "device", "revoke", lastID, "--wait"}, extra...)...)
	}
	// fromRevokedAt is the time from the revocation's time (the CA's clock
	// as the revocation began) to the last proxy's report of applying it:
	// what the proxies take, without the CLI's own start.
	fromRevokedAt := func(t *testing.T) time.Duration {
		t.Helper()
		d, err := a.store.FindDevice(ctx, lastID)
		if err != nil {
			t.Fatal(err)
		}
		reports, err := a.store.ListProxyReports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var last time.Time
		for _, r := range reports {
			if slices.Contains(names, r.Name) && r.AppliedAt.After(last) {
				last = r.AppliedAt
			}
		}
		return last.Sub(d.RevokedAt)
	}
	applied := regexp.MustCompile(`(?m)^revoked; applied on (\d+)/(\d+) proxies in (\d+) ms$`)

	t.Run("AppliedOnEveryProxy", func(t *testing.T) {
		code, out, errOut := revoke(t)
		if code != 0 || !strings.Contains(out, "revoked; applied on 3/3 proxies in ") {
			t.Fatalf("revoke --wait: exit %d\n%s%s", code, out, errOut)
		}
		// Each proxy exports its applied seq; the propagation lag is
		// observed once every live proxy has the revocation.
		seq, err := a.store.CurrentSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range procs {
			if v := metricValue(t, p.urls["metrics_url"], `devicegate_proxy_applied_seq{proxy="`+names[i]+`"}`); v < float64(seq) {
				t.Errorf("%s: devicegate_proxy_applied_seq %v after --wait, want >= %d", names[i], v, seq)
			}
		}
		for deadline := time.Now().Add(5 * time.Second); metricValue(t, procs[0].urls["metrics_url"], "devicegate_revocation_propagation_seconds_count") < 1; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("devicegate_revocation_propagation_seconds observed nothing within 5 s of a revocation applied everywhere")
			}
		}
		mustCLI(t, "admin", "--config", cfgA, "sub", "add", "shop:leaver", "--role", "finance")
		out = mustCLI(t, "admin", "--config", cfgA, "sub", "depart", "shop:leaver", "--wait")
		if !strings.Contains(out, "departed; applied on 3/3 proxies in ") {
			t.Fatalf("sub depart --wait:\n%s", out)
		}
	})

	t.Run("DepartedProxyNotWaitedFor", func(t *testing.T) {
		gone := store.ProxyReport{Name: "proxy-gone", Seq: 1, SeenAt: time.Now().Add(-time.Hour), Heartbeat: 2 * time.Second, Via: store.ViaStore}
		if err := a.store.ReportProxy(ctx, gone); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := revoke(t, "--timeout", "5s")
		if code != 0 || !strings.Contains(out, "applied on 3/3 proxies") || strings.Contains(out, "proxy-gone") {
			t.Fatalf("revoke --wait with a departed proxy: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("Propagation", func(t *testing.T) {
		n := 100 // a round (issue, CLI open, revoke, wait) takes 0.3-2 s on the shared machine
		if s := os.Getenv("DEVICEGATE_REVOKEWAIT_REVOCATIONS"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				t.Fatalf("DEVICEGATE_REVOKEWAIT_REVOCATIONS=%q: want a positive number", s)
			}
		}
		began := time.Now()
		lags := make([]time.Duration, 0, n)
		proxyLags := make([]time.Duration, 0, n)
		for range n {
			code, out, errOut := revoke(t)
			got := applied.FindStringSubmatch(out)
			if code != 0 || got == nil || got[1] != "3" || got[2] != "3" {
				t.Fatalf("revocation %d: exit %d\n%s%s", len(lags)+1, code, out, errOut)
			}
			ms, _ := strconv.Atoi(got[3])
			lags = append(lags, time.Duration(ms)*time.Millisecond)
			proxyLags = append(proxyLags, fromRevokedAt(t))
		}
		slices.Sort(lags)
		slices.Sort(proxyLags)
		t.Logf("from the revocation's time to the last proxy's report: p50 %v, p99 %v",
			proxyLags[len(proxyLags)/2].Round(time.Millisecond), proxyLags[(len(proxyLags)*99+99)/100-1].Round(time.Millisecond))
		p50, p99 := lags[len(lags)/2], lags[(len(lags)*99+99)/100-1]
		t.Logf("revoke --wait on 3 proxies (PostgreSQL), %d revocations in %v: p50 %v, p99 %v, max %v (goal p99 < 200 ms)",
			n, time.Since(began).Round(time.Second), p50, p99, lags[len(lags)-1])
		if p99 > 10*time.Second { // the goal is 200 ms; this catches a wait that only ever times out or polls
			t.Fatalf("p99 %v: far beyond the 200 ms goal", p99)
		}
	})

	t.Run("StoppedProxyNamed", func(t *testing.T) {
		procs[2].kill()
		code, out, errOut := revoke(t, "--timeout", "1s")
		if code == 0 || !strings.Contains(out, "applied on 2/3 proxies; not yet on "+names[2]) || !strings.Contains(errOut, names[2]) {
			t.Fatalf("revoke --wait with %s stopped: exit %d\n%s%s", names[2], code, out, errOut)
		}
	})
}

// TestRevokeWaitDemo: in the demo (SQLite, one in-process proxy) the wait
// polls the proxy's report and says 1/1, for a revocation and a departure.
func TestRevokeWaitDemo(t *testing.T) {
	cfg := writeConfig(t)
	startDemo(t, cfg)
	ctx := context.Background()
	a, err := openApp(ctx, cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tn, err := a.store.GetTenantByName(ctx, "demo-store")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := a.store.GetSubAccountByName(ctx, tn.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	_, id := faultDevice(t, ctx, a.ca, tn.ID, alice.ID, nil)
	out := mustCLI(t, "admin", "--config", cfg, "device", "revoke", id, "--wait")
	if !regexp.MustCompile(`(?m)^revoked; applied on 1/1 proxies in \d+ ms$`).MatchString(out) {
		t.Fatalf("revoke --wait in the demo:\n%s", out)
	}
	out = mustCLI(t, "admin", "--config", cfg, "sub", "depart", "demo-store:bob", "--wait")
	if !strings.Contains(out, "departed; applied on 1/1 proxies in ") {
		t.Fatalf("sub depart --wait in the demo:\n%s", out)
	}
}
