package main

import (
	"bufio"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Run is everything one `make bench` printed that the table is made of.
type Run struct {
	Benchmarks []Bench
	Peer       []PeerResult
	Tests      []TestFigure
}

// Context is when a figure was measured and how busy the machine was
// (the runner prints "DATE <time> load <1 5 15 min>" before each step).
type Context struct {
	At   string
	Load string
}

// Bench is one line of `go test -bench` output.
type Bench struct {
	Context
	Pkg     string // import path from the preceding "pkg:" line
	Name    string // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	N       int64
	Metrics map[string]float64 // unit -> value ("ns/op", "certs/s", ...)
}

// PeerResult is one RESULT line of ../shared/peerbench's load tool.
type PeerResult struct {
	Context
	Binding string // from bench/peerbench.sh's "devicegate <rev>, binding <mode>" line
	Name    string // direct, nginx, haproxy, devicegate
	Mode    string // keepalive, handshake
	RPS     float64
	P99ms   float64
	CPUus   float64 // CPU per request; NaN when the tool printed none
}

// TestFigure is a figure logged by a test in a stable sentence (the
// multi-node, failover and partition tests of cmd/devicegate).
type TestFigure struct {
	Context
	Kind   string             // one of the figure* names below
	Values map[string]float64 // seconds for durations, plain numbers otherwise
}

// The sentences the tests log, one kind each. Durations are Go's
// time.Duration text.
const (
	figurePropagation = "propagation"
	figureFailover    = "failover"
	figureQuotaNodes  = "quota-nodes"
	figurePartition   = "partition"
	figureRestart     = "restart"
	figureCutOff      = "cut-off"
)

var testFigures = []struct {
	kind string
	re   *regexp.Regexp
	keys []string
}{
	{figurePropagation, regexp.MustCompile(`(\d+) revocations .*reached all (\d+) database proxies: p50 (\S+), p99 (\S+), max ([^\s,(]+)`),
		[]string{"n", "proxies", "p50", "p99", "max"}},
	{figureFailover, regexp.MustCompile(`failover: promoted (\S+) after the crash.* first enrollment accepted in (\S+), first revocation \(CLI\) in (\S+), proxies fresh again in at most (\S+) `),
		[]string{"promoted", "enroll", "revoke", "fresh"}},
	{figureQuotaNodes, regexp.MustCompile(`quota race across 2 CA nodes: exactly (\d+) of (\d+) enrollments issued in each of (\d+) rounds \((\S+) per round\)`),
		[]string{"quota", "racers", "rounds", "per_round"}},
	{figurePartition, regexp.MustCompile(`(\d+) revocations during the partition in (\S+) \((\d+)/s\); link back: policy seq (\d+) applied after (\S+), high-risk path served after ([^\s;,]+)`),
		[]string{"n", "revoke", "rate", "seq", "catchup", "served"}},
	{figureRestart, regexp.MustCompile(`restarted proxy \(seq \d+ before the kill\): caught up (\S+) after it was ready`),
		[]string{"catchup"}},
	{figureCutOff, regexp.MustCompile(`proxy cut off from PostgreSQL \((\d+) connections closed\): caught up (\S+) after the link came back`),
		[]string{"conns", "catchup"}},
}

var (
	benchLine   = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)
	bindingLine = regexp.MustCompile(`^devicegate \S+, binding (\w+)`)
)

// Parse reads the runner's output. Lines it does not know are skipped;
// a known line with a value that does not parse is skipped too (the table
// then lacks that figure rather than showing a wrong one).
func Parse(r io.Reader) (Run, error) {
	var run Run
	var ctx Context
	pkg, binding := "", "header"
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "DATE "):
			f := strings.Fields(line)
			ctx = Context{At: f[1]}
			if len(f) > 3 && f[2] == "load" {
				ctx.Load = strings.Join(f[3:min(len(f), 6)], " ")
			}
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
		case strings.HasPrefix(line, "RESULT "):
			if p, ok := parsePeer(line); ok {
				p.Context, p.Binding = ctx, binding
				run.Peer = append(run.Peer, p)
			}
		case bindingLine.MatchString(line):
			binding = bindingLine.FindStringSubmatch(line)[1]
		case benchLine.MatchString(line):
			if b, ok := parseBench(line); ok {
				b.Context, b.Pkg = ctx, pkg
				run.Benchmarks = append(run.Benchmarks, b)
			}
		default:
			if f, ok := parseTestFigure(line); ok {
				f.Context = ctx
				run.Tests = append(run.Tests, f)
			}
		}
	}
	return run, sc.Err()
}

// parseBench reads "BenchmarkName-2  N  v unit  v unit ...".
func parseBench(line string) (Bench, bool) {
	m := benchLine.FindStringSubmatch(line)
	n, err := strconv.ParseInt(m[3], 10, 64)
	if err != nil {
		return Bench{}, false
	}
	f := strings.Fields(m[4])
	if len(f) < 2 || len(f)%2 != 0 {
		return Bench{}, false
	}
	b := Bench{Name: m[1], N: n, Metrics: map[string]float64{}}
	for i := 0; i < len(f); i += 2 {
		v, ok := number(f[i])
		if !ok {
			return Bench{}, false
		}
		b.Metrics[f[i+1]] = v
	}
	return b, true
}

// parsePeer reads "RESULT name=... mode=... rps=... p99_ms=... cpu_us_per_req=...".
func parsePeer(line string) (PeerResult, bool) {
	kv := map[string]string{}
	for _, f := range strings.Fields(line)[1:] {
		k, v, ok := strings.Cut(f, "=")
		if ok {
			kv[k] = v
		}
	}
	p := PeerResult{Name: kv["name"], Mode: kv["mode"], CPUus: math.NaN(), P99ms: math.NaN()}
	rps, ok := number(kv["rps"])
	if !ok || p.Name == "" || p.Mode == "" {
		return PeerResult{}, false
	}
	p.RPS = rps
	if v, ok := number(kv["p99_ms"]); ok {
		p.P99ms = v
	}
	if v, ok := number(kv["cpu_us_per_req"]); ok {
		p.CPUus = v
	}
	return p, true
}

func parseTestFigure(line string) (TestFigure, bool) {
	for _, t := range testFigures {
		m := t.re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := TestFigure{Kind: t.kind, Values: map[string]float64{}}
		for i, k := range t.keys {
			v, ok := value(m[i+1])
			if !ok {
				return TestFigure{}, false
			}
			f.Values[k] = v
		}
		return f, true
	}
	return TestFigure{}, false
}

// value is a plain number, or a Go duration in seconds.
func value(s string) (float64, bool) {
	if v, ok := number(s); ok {
		return v, true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return d.Seconds(), true
}

// number parses a finite decimal number (Inf and NaN are not figures).
func number(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}
