package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Row is one line of the results table: a figure, what it is compared
// with in the same run (or a goal), and the ratio between the two.
type Row struct {
	Area      string
	Figure    string
	Value     string
	Reference string
	Ratio     string
	Goal      string
	When      string
}

// Rows turns a run into the table's rows, in a fixed order of areas.
func Rows(run Run) []Row {
	var rows []Row
	rows = append(rows, issuanceRows(run)...)
	rows = append(rows, quotaRows(run)...)
	rows = append(rows, peerRows(run)...)
	rows = append(rows, testRows(run)...)
	rows = append(rows, proxyBenchRows(run)...)
	return rows
}

// Markdown renders rows as a table; cells never break it.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| area | figure | value | reference (same run) | ratio | goal | measured (UTC, load 1/5/15 min) |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		cells := []string{r.Area, r.Figure, r.Value, r.Reference, r.Ratio, r.Goal, r.When}
		for i, c := range cells {
			cells[i] = cell(c)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

// cell keeps a value on one line and out of the table's syntax.
func cell(s string) string {
	s = strings.NewReplacer("|", "/", "\n", " ", "\r", " ").Replace(s)
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func when(c Context) string {
	if c.Load == "" {
		return c.At
	}
	return c.At + ", load " + c.Load
}

// benches are the lines of benchmark name (every -count repetition).
func benches(run Run, name string) []Bench {
	var out []Bench
	for _, b := range run.Benchmarks {
		if b.Name == name {
			out = append(out, b)
		}
	}
	return out
}

// metric is the median of unit over bs, and whether any line had it.
func metric(bs []Bench, unit string) (float64, bool) {
	var v []float64
	for _, b := range bs {
		if x, ok := b.Metrics[unit]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return group(fmt.Sprintf("%.0f", v))
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// group puts thousands separators into an integer's text.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func seconds(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0f ms", v*1000)
	}
	return fmt.Sprintf("%.2f s", v)
}

func countSuffix(bs []Bench) string {
	if len(bs) == 1 {
		return ""
	}
	return fmt.Sprintf(" (median of %d runs)", len(bs))
}

func issuanceRows(run Run) []Row {
	var rows []Row
	for _, c := range []struct {
		name, backend, goal string
		goalRate            float64 // certs/s, 0: the goal is the ratio
	}{
		{"IssueVsBare", "SQLite", ">= 0.6x bare (issue 11)", 0},
		{"IssueVsBarePostgres", "PostgreSQL, durable commit", ">= 1,000 certs/s (issue 12)", 1000},
		{"IssueVsBarePostgresRemote", "PostgreSQL 2 ms away, durable commit", "- (counts a batch's round trips)", 0},
	} {
		bs := benches(run, c.name)
		https, ok := metric(bs, "https-certs/s")
		if !ok {
			continue
		}
		bare, _ := metric(bs, "bare-certs/s")
		x, _ := metric(bs, "x-bare")
		xc, _ := metric(bs, "x-bare-cpu")
		hc, _ := metric(bs, "https-cpu-us/cert")
		bc, _ := metric(bs, "bare-cpu-us/cert")
		area, at, goal := "issuance, 8 clients", when(bs[0].Context), c.goal
		if c.goalRate > 0 {
			goal += ": " + ratio(https, c.goalRate) + " of it"
		}
		rows = append(rows,
			Row{area, fmt.Sprintf("HTTPS issuance on %s, certs/s (%s)%s", c.backend, c.name, countSuffix(bs)), num(https),
				"bare signing " + num(bare) + " certs/s", fmt.Sprintf("%.2fx", x), goal, at},
			Row{area, fmt.Sprintf("HTTPS issuance on %s, CPU per certificate (database server included)", c.backend), num(hc) + " us",
				"bare signing " + num(bc) + " us", fmt.Sprintf("%.2fx", xc) + " (bare/HTTPS)", c.goal, at})
	}
	bare := benches(run, "BareSign")
	bareRate, haveBare := metric(bare, "certs/s")
	if haveBare {
		rows = append(rows, Row{"issuance, 8 clients", "bare signing alone (BareSign), certs/s" + countSuffix(bare), num(bareRate), "-", "1.00x", "-", when(bare[0].Context)})
	}
	for _, name := range []string{"IssueInProcess", "IssueHTTPS", "IssueStoreOnly"} {
		bs := benches(run, name)
		unit := "certs/s"
		if name == "IssueStoreOnly" {
			unit = "tx/s"
		}
		v, ok := metric(bs, unit)
		if !ok {
			continue
		}
		ref, r := "-", "-"
		if haveBare && unit == "certs/s" { // a store transaction is no certificate
			ref, r = "BareSign "+num(bareRate)+" certs/s", ratio(v, bareRate)
		}
		rows = append(rows, Row{"issuance, 8 clients", name + " on SQLite, " + unit + countSuffix(bs), num(v), ref, r, "-", when(bs[0].Context)})
	}
	return rows
}

func quotaRows(run Run) []Row {
	lite := benches(run, "QuotaRaceSQLite")
	liteNs, haveLite := metric(lite, "ns/op")
	var rows []Row
	for _, c := range []struct{ name, backend string }{{"QuotaRaceSQLite", "SQLite"}, {"QuotaRacePostgres", "PostgreSQL"}} {
		bs := benches(run, c.name)
		ns, ok := metric(bs, "ns/op")
		if !ok {
			continue
		}
		ref, r := "-", "-"
		if haveLite && c.name != "QuotaRaceSQLite" {
			ref, r = "SQLite "+seconds(liteNs/1e9), ratio(ns, liteNs)
		}
		rows = append(rows, Row{"quota race", fmt.Sprintf("1,000 rounds of 10 enrollments for N=5 on %s: exactly 5 in every round (else the benchmark fails)", c.backend),
			seconds(ns / 1e9), ref, r, "exactly N", when(bs[0].Context)})
	}
	return rows
}

// peerRows compares devicegate with each peer in the rounds: the ratio of
// each round (devicegate's line against the peer's latest line of the same
// mode and binding), and the median of the rounds.
func peerRows(run Run) []Row {
	type key struct{ binding, mode string }
	latest := map[key]map[string]PeerResult{}
	ratios := map[key]map[string][]float64{}
	cpu := map[key][]float64{}
	var order []key
	first := map[key]Context{}
	for _, p := range run.Peer {
		k := key{p.Binding, p.Mode}
		if latest[k] == nil {
			latest[k], ratios[k] = map[string]PeerResult{}, map[string][]float64{}
			order = append(order, k)
			first[k] = p.Context
		}
		if p.Name != "devicegate" {
			latest[k][p.Name] = p
			continue
		}
		if !math.IsNaN(p.CPUus) {
			cpu[k] = append(cpu[k], p.CPUus)
		}
		for peer, q := range latest[k] {
			if q.RPS > 0 {
				ratios[k][peer] = append(ratios[k][peer], p.RPS/q.RPS)
			}
		}
	}
	var rows []Row
	for _, k := range order {
		for _, peer := range []string{"nginx", "haproxy", "direct"} {
			r := ratios[k][peer]
			if len(r) == 0 {
				continue
			}
			goal := "-"
			switch {
			case k.mode == "keepalive" && peer != "direct":
				goal = ">= 1.2x (issue 11)"
			case k.mode == "handshake" && peer == "direct":
				goal = ">= 1.0x (issue 11)"
			}
			fig := fmt.Sprintf("proxy, %s binding, %s: devicegate requests/s over %s (median of %d rounds, range %.2f-%.2f)",
				k.binding, k.mode, peer, len(r), slices.Min(r), slices.Max(r))
			rows = append(rows, Row{"proxy (peerbench)", fig, fmt.Sprintf("%.2fx", median(r)), peer + ", same rounds", fmt.Sprintf("%.2fx", median(r)), goal, when(first[k])})
		}
		if c := cpu[k]; len(c) > 0 {
			rows = append(rows, Row{"proxy (peerbench)", fmt.Sprintf("proxy, %s binding, %s: devicegate CPU per request (median of %d rounds)", k.binding, k.mode, len(c)),
				num(median(c)) + " us", "-", "-", "-", when(first[k])})
		}
	}
	return rows
}

func testRows(run Run) []Row {
	var rows []Row
	for _, f := range run.Tests {
		v, at := f.Values, when(f.Context)
		switch f.Kind {
		case figurePropagation:
			rows = append(rows,
				Row{"revocation propagation", fmt.Sprintf("%.0f revocations to %.0f proxies on PostgreSQL, p50", v["n"], v["proxies"]), seconds(v["p50"]), "goal 200 ms (p99)", ratio(v["p50"], 0.2), "p99 < 200 ms", at},
				Row{"revocation propagation", fmt.Sprintf("%.0f revocations to %.0f proxies on PostgreSQL, p99 (max %s)", v["n"], v["proxies"], seconds(v["max"])), seconds(v["p99"]), "goal 200 ms", ratio(v["p99"], 0.2), "p99 < 200 ms", at})
		case figureFailover:
			rows = append(rows,
				Row{"failover", "promotion to the first enrollment accepted", seconds(v["enroll"]), "goal 10 s", ratio(v["enroll"], 10), "< 10 s, nothing lost", at},
				Row{"failover", "promotion to every proxy fresh again", seconds(v["fresh"]), "goal 10 s", ratio(v["fresh"], 10), "< 10 s, nothing lost", at})
		case figureQuotaNodes:
			rows = append(rows, Row{"quota race", fmt.Sprintf("2 CA nodes, %.0f rounds of %.0f enrollments: exactly %.0f in every round", v["rounds"], v["racers"], v["quota"]),
				seconds(v["per_round"]) + " per round", "-", "-", "exactly N in 1,000 rounds", at})
		case figurePartition:
			rows = append(rows, Row{"partition catch-up", fmt.Sprintf("proxy cut off from PostgreSQL while %s revocations happen (%s, %.0f/s): catch-up after the link returns", num(v["n"]), seconds(v["revoke"]), v["rate"]),
				seconds(v["catchup"]), "goal 2 s", ratio(v["catchup"], 2), "< 2 s", at})
		case figureRestart:
			rows = append(rows, Row{"partition catch-up", "proxy killed and restarted after revocations: caught up after it was ready", seconds(v["catchup"]), "goal 2 s", ratio(v["catchup"], 2), "< 2 s", at})
		case figureCutOff:
			rows = append(rows, Row{"partition catch-up", "proxy cut off from PostgreSQL (relay): caught up after the link came back", seconds(v["catchup"]), "goal 2 s", ratio(v["catchup"], 2), "< 2 s", at})
		}
	}
	return rows
}

// proxyBenchRows are the proxy's own benchmarks: the snapshot with a
// million revoked devices against none, idle connection memory, and the
// micro-benchmarks of the request path.
func proxyBenchRows(run Run) []Row {
	var rows []Row
	none := benches(run, "PolicyCheckRevoked/revoked=0")
	noneNs, haveNone := metric(none, "ns/op")
	if million := benches(run, "PolicyCheckRevoked/revoked=1000000"); len(million) > 0 {
		ns, _ := metric(million, "ns/op")
		mb, _ := metric(million, "snapshot-MB")
		ref, r := "-", "-"
		if haveNone {
			ref, r = "no revoked: "+num(noneNs)+" ns", ratio(ns, noneNs)
		}
		rows = append(rows, Row{"snapshot load", "policy check with 1,000,000 revoked devices in the store, ns per check", num(ns), ref, r, "no slower", when(million[0].Context)},
			Row{"snapshot load", "snapshot heap with 1,000,000 revoked devices", fmt.Sprintf("%.1f MB", max(mb, 0)), "-", "-", "< 100 MB process", when(million[0].Context)})
	}
	if bs := benches(run, "IdleConnMemory"); len(bs) > 0 {
		v, _ := metric(bs, "KiB/idle-conn")
		rows = append(rows, Row{"memory per connection", "idle mTLS keep-alive connection, server side" + countSuffix(bs), fmt.Sprintf("%.1f KiB", v), "goal 40 KB", ratio(v*1024, 40000), "< 40 KB", when(bs[0].Context)})
	}
	check := benches(run, "SnapshotCheck")
	checkNs, haveCheck := metric(check, "ns/op")
	for _, name := range []string{"SnapshotCheck", "SnapshotCheckPeer", "ParseHead"} {
		bs := benches(run, name)
		ns, ok := metric(bs, "ns/op")
		if !ok {
			continue
		}
		ref, r := "-", "-"
		if name == "SnapshotCheckPeer" && haveCheck {
			ref, r = "SnapshotCheck "+num(checkNs)+" ns", ratio(ns, checkNs)
		}
		fig := name + ", ns/op"
		if a, ok := metric(bs, "allocs/op"); ok {
			fig += fmt.Sprintf(" (%.0f allocs)", a)
		}
		rows = append(rows, Row{"proxy request path", fig + countSuffix(bs), num(ns), ref, r, "-", when(bs[0].Context)})
	}
	return rows
}
