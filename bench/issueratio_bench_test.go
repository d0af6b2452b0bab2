package bench

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// ratioRounds is how many times IssueVsBare alternates the two sides.
const ratioRounds = 5

// BenchmarkIssueVsBare measures the issue's ratio: POST /v1/enroll over
// HTTPS on SQLite (IssueHTTPS, with the CA's Run and CRL as in `serve`)
// beside bare signing (BareSign) in the same process, in alternating
// rounds of b.N certificates each (8 clients), so both sides see the same
// machine: the median ratio of the rounds is x-bare. On a machine shared
// with other work the wall-clock rates follow the CPU share the process
// gets, so the benchmark also reports the ratio of CPU time per
// certificate (the process's user+system time, both sides in the same
// process; the HTTPS side includes its client), x-bare-cpu, and the CPU
// time per certificate of each side. Run it with a
// fixed count per round:
//
//	go test -run '^$' -bench IssueVsBare -benchtime 1000x -count 5 ./bench/
func BenchmarkIssueVsBare(b *testing.B) {
	issueVsBare(b, newIssueEnv(b, ratioRounds*b.N))
}

// BenchmarkIssueVsBareHandshake is IssueVsBare with a new TLS connection
// per enrollment: a device enrolls once (`devicegate enroll`), so in
// production every enrollment pays a full handshake, which IssueVsBare's
// kept-alive connections do not.
func BenchmarkIssueVsBareHandshake(b *testing.B) {
	e := newIssueEnv(b, ratioRounds*b.N)
	e.connPerEnroll = true
	issueVsBare(b, e)
}

// issueVsBare runs the alternating rounds on e (made for ratioRounds*b.N
// issuances) and reports the medians. The HTTPS side's CPU time includes
// the database server's (e.dbCPU) when it runs in processes of its own.
func issueVsBare(b *testing.B, e *issueEnv) {
	sign, enroll := e.bareSigner(b), e.enrollOverHTTPS(b)
	var bare, https, ratios, cpuRatios, bareCPUs, httpsCPUs, dbCPUs []float64
	b.ResetTimer()
	for r := range ratioRounds {
		start, cpu := time.Now(), cpuTime(b)
		runParallel(b, b.N, func(w, _ int) error { return sign(w) })
		bareRate, bareCPU := float64(b.N)/time.Since(start).Seconds(), cpuTime(b)-cpu
		start, cpu, db := time.Now(), cpuTime(b), e.serverCPU(b)
		runParallel(b, b.N, func(_, i int) error { return enroll(r*b.N + i) })
		db = e.serverCPU(b) - db
		httpsRate, httpsCPU := float64(b.N)/time.Since(start).Seconds(), cpuTime(b)-cpu+db
		bare, https = append(bare, bareRate), append(https, httpsRate)
		ratios, cpuRatios = append(ratios, httpsRate/bareRate), append(cpuRatios, float64(bareCPU)/float64(httpsCPU))
		bareCPUs = append(bareCPUs, float64(bareCPU.Microseconds())/float64(b.N))
		httpsCPUs = append(httpsCPUs, float64(httpsCPU.Microseconds())/float64(b.N))
		dbCPUs = append(dbCPUs, float64(db.Microseconds())/float64(b.N))
	}
	b.ReportMetric(median(bare), "bare-certs/s")
	b.ReportMetric(median(https), "https-certs/s")
	b.ReportMetric(median(ratios), "x-bare")
	b.ReportMetric(median(cpuRatios), "x-bare-cpu")
	b.ReportMetric(median(bareCPUs), "bare-cpu-us/cert")
	b.ReportMetric(median(httpsCPUs), "https-cpu-us/cert")
	if e.dbCPU != nil {
		b.ReportMetric(median(dbCPUs), "db-cpu-us/cert") // the database server's share of https-cpu-us/cert
	}
}

// serverCPU is the database server's CPU time so far (0 for SQLite, which
// runs in this process).
func (e *issueEnv) serverCPU(b *testing.B) time.Duration {
	if e.dbCPU == nil {
		return 0
	}
	d, err := e.dbCPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// cpuTime is the user+system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
