package main

import (
	"math"
	"strings"
	"testing"
)

// sample is output as the runner gathers it (shortened).
const sample = `DATE 2026-12-03T00:10:00Z load 5.10 4.20 3.00
goos: linux
pkg: github.com/devicegate/devicegate/bench
BenchmarkIssueVsBare-2   	     400	  64282755 ns/op	       286.5 bare-certs/s	       533.9 bare-cpu-us/cert	        98.34 https-certs/s	      1500 https-cpu-us/cert	         0.3208 x-bare	         0.2810 x-bare-cpu
BenchmarkIssueVsBarePostgres-2   	     400	  77557798 ns/op	       385.8 bare-certs/s	       533.9 bare-cpu-us/cert	        76.05 https-certs/s	      4926 https-cpu-us/cert	         0.1722 x-bare	         0.2087 x-bare-cpu
BenchmarkQuotaRaceSQLite-2   	       1	4600000000 ns/op	      1000 rounds/op
BenchmarkQuotaRacePostgres-2   	       1	16600000000 ns/op	      1000 rounds/op
BenchmarkPolicyCheckRevoked/revoked=0-2         	 2000000	       980 ns/op	         0 snapshot-MB
BenchmarkPolicyCheckRevoked/revoked=1000000-2   	 2000000	       983 ns/op	         0.4 snapshot-MB
BenchmarkIdleConnMemory-2   	       1	 900000000 ns/op	        33.8 KiB/idle-conn
pkg: github.com/devicegate/devicegate/proxy
BenchmarkSnapshotCheck-2       	 1000000	      1117 ns/op	     416 B/op	       6 allocs/op
BenchmarkSnapshotCheckPeer-2   	15000000	        79 ns/op	       0 B/op	       0 allocs/op
DATE 2026-12-03T00:30:00Z load 7.00 6.00 5.00
devicegate 00d8bf1, binding header
RESULT name=direct mode=keepalive rps=20000 p50_ms=0.30 p99_ms=1.20 ok=1 errors=0 cpu_us_per_req=30
RESULT name=nginx mode=keepalive rps=10000 p50_ms=0.30 p99_ms=2.20 ok=1 errors=0 cpu_us_per_req=40
RESULT name=haproxy mode=keepalive rps=9000 p50_ms=0.30 p99_ms=2.20 ok=1 errors=0 cpu_us_per_req=50
RESULT name=devicegate mode=keepalive rps=9500 p50_ms=0.30 p99_ms=2.50 ok=1 errors=0 cpu_us_per_req=45
RESULT name=direct mode=handshake rps=1500 p50_ms=0.30 p99_ms=1.20 ok=1 errors=0 cpu_us_per_req=600
RESULT name=devicegate mode=handshake rps=1350 p50_ms=0.30 p99_ms=2.50 ok=1 errors=0 cpu_us_per_req=700
    multinode_test.go:501: 1000 revocations (owner console of node A and B in turn) reached all 3 database proxies: p50 41.2ms, p99 120.5ms, max 180ms (goal p99 < 200 ms)
    multinode_test.go:571: quota race across 2 CA nodes: exactly 3 of 8 enrollments issued in each of 1000 rounds (95ms per round)
    failover_test.go:301: failover: promoted 2.1s after the crash (once both proxies failed closed); after the promotion: first enrollment accepted in 1.5s, first revocation (CLI) in 1.2s, proxies fresh again in at most 2.3s (slowest); load: 10 enrollments
    partition_test.go:304: cut: high-risk passed 5 times, then 503 policy_stale after 2.1s; 100002 revocations during the partition in 50s (2000/s); link back: policy seq 123 applied after 850ms, high-risk path served after 900ms; normal path 10/10 OK
`

func TestParseSample(t *testing.T) {
	run, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Benchmarks) != 9 || len(run.Peer) != 6 || len(run.Tests) != 4 {
		t.Fatalf("parsed %d benchmarks, %d peer results, %d test figures; want 9, 6, 4", len(run.Benchmarks), len(run.Peer), len(run.Tests))
	}
	b := run.Benchmarks[0]
	if b.Name != "IssueVsBare" || b.N != 400 || b.Metrics["x-bare"] != 0.3208 || b.At != "2026-12-03T00:10:00Z" || b.Load != "5.10 4.20 3.00" {
		t.Errorf("first benchmark: %+v", b)
	}
	if got := run.Benchmarks[5].Name; got != "PolicyCheckRevoked/revoked=1000000" {
		t.Errorf("sub-benchmark name %q", got)
	}
	if got := run.Benchmarks[7].Pkg; got != "github.com/devicegate/devicegate/proxy" {
		t.Errorf("package %q", got)
	}
	if p := run.Peer[3]; p.Name != "devicegate" || p.Binding != "header" || p.RPS != 9500 || p.CPUus != 45 || p.At != "2026-12-03T00:30:00Z" {
		t.Errorf("peer result: %+v", p)
	}
	tests := []struct {
		kind, key string
		want      float64
	}{
		{figurePropagation, "p99", 0.1205},
		{figureQuotaNodes, "rounds", 1000},
		{figureFailover, "fresh", 2.3},
		{figurePartition, "catchup", 0.85},
		{figurePartition, "n", 100002},
	}
	for _, tt := range tests {
		found := false
		for _, f := range run.Tests {
			if f.Kind == tt.kind {
				found = true
				if math.Abs(f.Values[tt.key]-tt.want) > 1e-9 {
					t.Errorf("%s %s = %v, want %v", tt.kind, tt.key, f.Values[tt.key], tt.want)
				}
			}
		}
		if !found {
			t.Errorf("no %s figure", tt.kind)
		}
	}
}

func TestTableSample(t *testing.T) {
	run, _ := Parse(strings.NewReader(sample))
	md := Markdown(Rows(run))
	for _, want := range []string{
		"| 98.3 | bare signing 286 certs/s | 0.32x | >= 0.6x bare (issue 11) |",
		"PostgreSQL, durable commit, certs/s (IssueVsBarePostgres) | 76.0 |",
		"| 16.60 s | SQLite 4.60 s | 3.61x |",
		"proxy, header binding, keepalive: devicegate requests/s over nginx (median of 1 rounds, range 0.95-0.95) | 0.95x |",
		"proxy, header binding, handshake: devicegate requests/s over direct (median of 1 rounds, range 0.90-0.90) | 0.90x |",
		"p99 (max 180 ms) | 120 ms | goal 200 ms | 0.60x |",
		"catch-up after the link returns | 850 ms | goal 2 s | 0.42x | < 2 s |",
		"| 79.0 | SnapshotCheck 1,117 ns | 0.07x |",
		"| 33.8 KiB | goal 40 KB | 0.87x |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

// TestParseRefusesBadLines: a known line with a value that is not a
// finite number gives no figure rather than a wrong one.
func TestParseRefusesBadLines(t *testing.T) {
	for _, line := range []string{
		"BenchmarkX-2 10 NaN ns/op",
		"BenchmarkX-2 10 +Inf ns/op",
		"BenchmarkX-2 10 5 ns/op 7",
		"BenchmarkX-2 99999999999999999999 5 ns/op",
		"RESULT name=nginx mode=keepalive rps=fast",
		"RESULT mode=keepalive rps=5",
		"proxy cut off from PostgreSQL (3 connections closed): caught up soon after the link came back",
	} {
		run, err := Parse(strings.NewReader(line))
		if err != nil {
			t.Fatal(err)
		}
		if len(run.Benchmarks)+len(run.Peer)+len(run.Tests) != 0 {
			t.Errorf("%q gave a figure: %+v", line, run)
		}
	}
}

// FuzzParse: any input parses without panicking, every figure is a finite
// number, and every table line has exactly the table's seven cells.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("DATE\nBenchmarkA 1 2 u|x\nRESULT name=a|b mode=c rps=1")
	f.Add("DATE x load\npkg:\ndevicegate x, binding jwt\nRESULT name=devicegate mode=m rps=0")
	f.Fuzz(func(t *testing.T, in string) {
		run, err := Parse(strings.NewReader(in))
		if err != nil {
			return // a line longer than the scanner's buffer
		}
		for _, b := range run.Benchmarks {
			for _, v := range b.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("non-finite metric in %+v", b)
				}
			}
		}
		for _, p := range run.Peer {
			if math.IsNaN(p.RPS) || math.IsInf(p.RPS, 0) {
				t.Fatalf("non-finite rate in %+v", p)
			}
		}
		for _, line := range strings.Split(strings.TrimSuffix(Markdown(Rows(run)), "\n"), "\n") {
			if n := strings.Count(line, "|"); n != 8 {
				t.Fatalf("table line with %d separators: %q", n, line)
			}
		}
	})
}
