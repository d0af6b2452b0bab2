package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestFailoverPromoteStandby runs the real roles (`devicegate serve` and two
// `devicegate proxy`, max_staleness 2 s) on a primary and its synchronous
// standby through a multi-host DSN (target_session_attrs=read-write), with
// two clients each enrolling a device (API) and revoking it (admin CLI,
// the binary) over and over. It crashes the primary, waits until the
// proxies refuse the high-risk path (no fresh policy), promotes the
// standby, and checks, restarting nothing:
//   - every enrollment and every revocation that was answered with success
//     is in the database afterwards;
//   - an enrollment is accepted again soon after the promotion, and every
//     proxy syncs again (goal for both: < 10 s);
//   - the high-risk path answers 200 or 503 policy_stale, never refuses
//     a valid device before about max_staleness after the crash and never
//     after its proxy is fresh again; a device revoked during the failover
//     is refused by every proxy, one valid passes;
//   - both proxies LISTEN again, on the new primary, and have applied every
//     acknowledged revocation.
func TestFailoverPromoteStandby(t *testing.T) {
	pg := pgtest.StartReplicated(t)
	dsn := pg.NewDatabase(t)
	bin := buildBinary(t)
	const maxStaleness = 2 * time.Second

	const user, password = "shop:kim", "kim-backoffice-pw"
	hash, err := secrets.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	bo := httptest.NewServer(backoffice.New([]backoffice.User{{Name: user, PasswordHash: hash}}))
	defer bo.Close()

	dir := t.TempDir()
	config := func(snapshot string) string {
		return fmt.Sprintf(`data_dir: data
log: {level: warn}
database: {driver: postgres, dsn: %q}
ca: {listen: 127.0.0.1:0}
portal: {listen: 127.0.0.1:0}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  max_staleness: %s
  snapshot_file: %s
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
        - {path: /products, point: products}
`, dsn, maxStaleness, snapshot, bo.URL, bo.URL+"/whoami")
	}
	cfg := filepath.Join(dir, "devicegate.yaml")
	for name, snapshot := range map[string]string{"devicegate.yaml": "snapshot-0.json", "proxy-1.yaml": "snapshot-1.json", "proxy-2.yaml": "snapshot-2.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(config(snapshot)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	a, tenant, kim := protectedShop(t, cfg, "cs-supervisor", 2)
	defer a.Close()
	// The load enrolls and revokes devices of a sub-account of its own.
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:load", "--role", "cs-supervisor")
	mustCLI(t, "admin", "--config", cfg, "sub", "phone", "shop:load")
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "shop:load", "--devices", "5")
	loadSub, err := a.store.GetSubAccountByName(ctx, tenant.ID, "load")
	if err != nil {
		t.Fatal(err)
	}
	// The probe: one enrollment of a sub-account of its own, sent from the
	// crash on until accepted, measures when enrolling works again.
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:probe", "--role", "cs-supervisor")
	mustCLI(t, "admin", "--config", cfg, "sub", "phone", "shop:probe")
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "shop:probe", "--devices", "1")
	probeSub, err := a.store.GetSubAccountByName(ctx, tenant.ID, "probe")
	if err != nil {
		t.Fatal(err)
	}
	probeCode, _, err := a.ca.CreateTicket(ctx, tenant.ID, probeSub.ID, cliActor())
	if err != nil {
		t.Fatal(err)
	}
	pgAdmin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pgAdmin.Close()
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Keys().Root)

	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"serve.log", "proxy-1.log", "proxy-2.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, name))
				t.Logf("%s (end):\n%s", name, tail(b))
			}
		}
	})
	caProc := startProc(t, bin, filepath.Join(dir, "serve.log"), []string{"ca_url"}, "serve", "--config", cfg)
	caURL := caProc.urls["ca_url"]
	var proxies []*faultProc
	for i := 1; i <= 2; i++ {
		proxies = append(proxies, startProc(t, bin, filepath.Join(dir, fmt.Sprintf("proxy-%d.log", i)), []string{"proxy_url", "metrics_url"},
			"proxy", "--config", filepath.Join(dir, fmt.Sprintf("proxy-%d.yaml", i))))
	}

	// kim's two devices, logged in to the app: one stays valid, one is
	// revoked while the database fails over.
	valid, _ := faultDevice(t, ctx, a.ca, tenant.ID, kim.ID, roots)
	doomed, doomedID := faultDevice(t, ctx, a.ca, tenant.ID, kim.ID, roots)
	for _, dev := range []*http.Client{valid, doomed} {
		for _, p := range proxies {
			waitStatus(t, "high-risk path before the crash", 10*time.Second, func() (int, string) {
				if resp, err := dev.PostForm(p.urls["proxy_url"]+"/login", url.Values{"username": {user}, "password": {password}}); err == nil {
					resp.Body.Close()
				}
				return proxyGet(dev, p.urls["proxy_url"]+"/orders/sold")
			}, http.StatusOK)
		}
	}

	// Enrollment codes, made ahead (the load must not wait on the test's
	// own connection to the database).
	codes := make(chan string, 80)
	for range cap(codes) {
		code, _, err := a.ca.CreateTicket(ctx, tenant.ID, loadSub.ID, cliActor())
		if err != nil {
			t.Fatal(err)
		}
		codes <- code
	}
	close(codes)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	load := &failoverLoad{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for code := range codes {
				if loadCtx.Err() != nil {
					return
				}
				at := newAttempt(t, code)
				if !load.enroll(loadCtx, t, client, caURL, at) {
					return
				}
				if !load.revoke(loadCtx, t, bin, cfg, at.device) {
					return
				}
			}
		}()
	}
	// The high-risk path of both proxies with the valid device, all along.
	var mon failoverMonitor
	monCtx, stopMon := context.WithCancel(ctx)
	var monWG sync.WaitGroup
	for i, p := range proxies {
		monWG.Add(1)
		go func() {
			defer monWG.Done()
			mon.watch(monCtx, i, valid, p.urls["proxy_url"]+"/orders/sold")
		}()
	}

	load.waitCycles(t, 2) // each client enrolled and revoked: the load runs
	crashed := time.Now() // the primary stops serving at once; pg_ctl returns once it is gone
	pg.Primary.Crash(t)
	// Enroll the probe and revoke kim's second device now: each succeeds
	// only once a primary takes it (retried meanwhile).
	probe := &failoverLoad{}
	go func() {
		probe.enroll(loadCtx, t, client, caURL, newAttempt(t, probeCode))
	}()
	doomedDone := make(chan int64, 1)
	var doomedAt time.Time
	go func() {
		seq, _ := load.revokeWith(loadCtx, t, bin, cfg, doomedID)
		doomedAt = time.Now()
		doomedDone <- seq
	}()
	// Promote once every proxy fails closed: a failover tool takes a
	// while to decide; meanwhile no proxy has a fresh policy.
	for i := range proxies {
		mon.waitStale(t, i, 30*time.Second)
	}
	pg.Promote(t)
	promoted := time.Now()

	// Every proxy syncs again (its staleness restarts after promotion).
	freshAt := make([]time.Time, len(proxies))
	for i, p := range proxies {
		freshAt[i] = failoverWaitSynced(t, p.urls["metrics_url"], promoted, 60*time.Second)
	}
	firstEnroll := probe.waitEnrolledAfter(t, promoted, 60*time.Second)
	var doomedSeq int64
	select {
	case doomedSeq = <-doomedDone:
	case <-time.After(60 * time.Second):
		t.Fatal("revoking kim's device did not succeed within 60 s of the promotion")
	}
	if doomedSeq == 0 {
		t.Fatal("revoking kim's device during the failover failed")
	}
	load.waitCycles(t, load.cycles()+2) // the load goes on after the failover
	stopLoad()
	wg.Wait()
	stopMon()
	monWG.Wait()

	// Nothing acknowledged is lost.
	devices := failoverRetry(t, "list the load's devices", func() ([]store.Device, error) {
		return a.store.ListDevices(ctx, tenant.ID, loadSub.ID)
	})
	byID := map[string]store.Device{}
	for _, d := range devices {
		byID[d.ID] = d
	}
	load.mu.Lock()
	for id, serial := range load.enrolled {
		if d, ok := byID[id]; !ok || d.Serial != serial {
			t.Errorf("enrollment of device %s (serial %s) was acknowledged and is lost", id, serial)
		}
	}
	maxSeq := doomedSeq
	for id, seq := range load.revoked {
		if d := byID[id]; d.Status != store.DeviceRevoked {
			t.Errorf("revocation of device %s (seq %d) was acknowledged and is lost: %s", id, seq, d.Status)
		}
		maxSeq = max(maxSeq, seq)
	}
	enrolled, revoked, failedTries := len(load.enrolled), len(load.revoked), load.failed
	load.mu.Unlock()
	probe.mu.Lock()
	for id, serial := range probe.enrolled {
		d := failoverRetry(t, "the probe's device", func() (store.Device, error) { return a.store.GetDevice(ctx, tenant.ID, id) })
		if d.Serial != serial || d.Status != store.DeviceActive {
			t.Errorf("the probe's enrollment (device %s, serial %s) was acknowledged; the store has serial %s, %s", id, serial, d.Serial, d.Status)
		}
	}
	probe.mu.Unlock()
	d := failoverRetry(t, "kim's revoked device", func() (store.Device, error) { return a.store.GetDevice(ctx, tenant.ID, doomedID) })
	if d.Status != store.DeviceRevoked {
		t.Errorf("kim's device revoked during the failover is %s", d.Status)
	}

	// The proxies: fresh, listening on the new primary, every acknowledged
	// revocation applied; the valid device passes, the revoked one not.
	failoverWaitListeners(t, pgAdmin, len(proxies))
	for i, p := range proxies {
		failoverWaitSeq(t, p.urls["metrics_url"], maxSeq, 10*time.Second)
		waitStatus(t, fmt.Sprintf("proxy %d: valid device after the failover", i+1), 10*time.Second, func() (int, string) { return proxyGet(valid, p.urls["proxy_url"]+"/orders/sold") }, http.StatusOK)
		if status, reason := proxyGet(doomed, p.urls["proxy_url"]+"/orders/sold"); status != http.StatusForbidden && status != 0 {
			t.Errorf("proxy %d: device revoked during the failover: %d %s, want 403 or no answer", i+1, status, reason)
		}
	}
	mon.check(t, crashed, maxStaleness, freshAt)

	slowest := time.Duration(0)
	for _, f := range freshAt {
		slowest = max(slowest, f.Sub(promoted))
	}
	if d := firstEnroll.Sub(promoted); d > 10*time.Second {
		t.Errorf("first enrollment accepted %v after the promotion, goal < 10 s", d)
	}
	if slowest > 10*time.Second {
		t.Errorf("last proxy fresh again %v after the promotion, goal < 10 s", slowest)
	}
	t.Logf("failover: promoted %v after the crash (once both proxies failed closed); after the promotion: first enrollment accepted in %v, first revocation (CLI) in %v, proxies fresh again in at most %v (slowest); load: %d enrollments and %d revocations acknowledged, %d failed tries retried, none lost; high-risk answers of a valid device: %s",
		promoted.Sub(crashed).Round(time.Millisecond), firstEnroll.Sub(promoted).Round(time.Millisecond), doomedAt.Sub(promoted).Round(time.Millisecond), slowest.Round(time.Millisecond),
		enrolled, revoked, failedTries, mon.summary())
	for _, p := range append(proxies, caProc) {
		p.kill()
	}
}

// failoverLoad is what the load's clients were answered: acknowledged
// enrollments (device id -> serial) and revocations (device id -> seq).
type failoverLoad struct {
	mu       sync.Mutex
	enrolled map[string]string
	ackedAt  []time.Time // of the enrollments
	revoked  map[string]int64
	failed   int    // tries answered with an error (retried)
	lastFail string // the last such answer
	changed  chan struct{}
}

func (l *failoverLoad) cycles() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.revoked)
}

// notify wakes waitCycles and waitEnrolledAfter; called with l.mu held.
func (l *failoverLoad) notify() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// wait returns a channel closed at the next change.
func (l *failoverLoad) wait() <-chan struct{} {
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// enroll sends at until the CA answers 201 (an error or a cut connection
// is retried with the same code and CSR); false: the load stopped.
func (l *failoverLoad) enroll(ctx context.Context, t *testing.T, c *http.Client, caURL string, at *enrollAttempt) bool {
	for ctx.Err() == nil {
		postEnroll(c, caURL, at)
		if at.status == http.StatusCreated {
			l.mu.Lock()
			if l.enrolled == nil {
				l.enrolled = map[string]string{}
			}
			l.enrolled[at.device] = at.serial
			l.ackedAt = append(l.ackedAt, time.Now())
			l.notify()
			l.mu.Unlock()
			return true
		}
		if at.status != 0 && at.status < 500 {
			t.Errorf("enrollment refused: %d %s", at.status, at.errKey)
			return false
		}
		l.mu.Lock()
		l.failed++
		l.lastFail = fmt.Sprintf("enroll: %d %s %v", at.status, at.errKey, at.netErr)
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // no database yet: do not spin
	}
	return false
}

// revoke revokes device with the admin CLI (the binary) and records the
// acknowledgment; false: the load stopped.
func (l *failoverLoad) revoke(ctx context.Context, t *testing.T, bin, cfg, device string) bool {
	seq, acked := l.revokeWith(ctx, t, bin, cfg, device)
	if seq == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if acked {
		if l.revoked == nil {
			l.revoked = map[string]int64{}
		}
		l.revoked[device] = seq
	}
	l.notify()
	return true
}

var failoverRevokedSeq = regexp.MustCompile(`revoked \(.*seq (\d+)\)`)

// revokeWith runs `devicegate admin device revoke` until it succeeds and
// returns the revocation's seq (0: the load stopped first). acked is false
// when a retry found the device already revoked: an earlier try landed,
// though its answer was lost; seq is then -1.
func (l *failoverLoad) revokeWith(ctx context.Context, t *testing.T, bin, cfg, device string) (seq int64, acked bool) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(cctx, bin, "admin", "--config", cfg, "device", "revoke", device).CombinedOutput()
		cancel()
		if err == nil {
			m := failoverRevokedSeq.FindSubmatch(out)
			if m == nil {
				t.Errorf("device revoke answered %q", out)
				return 0, false
			}
			seq, _ := strconv.ParseInt(string(m[1]), 10, 64)
			return seq, true
		}
		if strings.Contains(string(out), store.ErrDeviceInactive.Error()) {
			return -1, false
		}
		l.mu.Lock()
		l.failed++
		l.lastFail = fmt.Sprintf("revoke: %v %s", err, out)
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return 0, false
}

// waitCycles waits until n devices were enrolled and revoked.
func (l *failoverLoad) waitCycles(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		done, next := len(l.revoked) >= n, l.wait()
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-next:
		case <-deadline:
			t.Fatalf("the load did not get to %d enroll+revoke cycles within 60 s", n)
		}
	}
}

// waitEnrolledAfter returns when the first enrollment after at was
// acknowledged.
func (l *failoverLoad) waitEnrolledAfter(t *testing.T, at time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		next := l.wait()
		for _, a := range l.ackedAt {
			if a.After(at) {
				l.mu.Unlock()
				return a
			}
		}
		l.mu.Unlock()
		select {
		case <-next:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no enrollment accepted within %v of the promotion (%d tries failed, the last: %s)", timeout, l.failed, l.lastFail)
		}
	}
}

// failoverMonitor records the high-risk answers of each proxy.
type failoverMonitor struct {
	mu      sync.Mutex
	answers map[int][]failoverAnswer
}

type failoverAnswer struct {
	sent, got time.Time
	status    int
	reason    string
}

func (m *failoverMonitor) watch(ctx context.Context, proxy int, c *http.Client, u string) {
	for ctx.Err() == nil {
		sent := time.Now()
		status, reason := proxyGet(c, u)
		m.mu.Lock()
		if m.answers == nil {
			m.answers = map[int][]failoverAnswer{}
		}
		m.answers[proxy] = append(m.answers[proxy], failoverAnswer{sent, time.Now(), status, reason})
		m.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStale waits until proxy refused the high-risk path as stale.
func (m *failoverMonitor) waitStale(t *testing.T, proxy int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		m.mu.Lock()
		for _, a := range m.answers[proxy] {
			if a.status == http.StatusServiceUnavailable {
				m.mu.Unlock()
				return
			}
		}
		m.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("proxy %d still passes the high-risk path %v after the primary crashed (max_staleness 2 s)", proxy+1, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check: every answer is 200 or 503 policy_stale; no 503 comes back
// before half of max_staleness after the crash nor for a request sent
// after the proxy was fresh again; 200 again at the end.
func (m *failoverMonitor) check(t *testing.T, crashed time.Time, maxStaleness time.Duration, freshAt []time.Time) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for proxy, answers := range m.answers {
		for _, a := range answers {
			switch {
			case a.status == http.StatusOK:
			case a.status == http.StatusServiceUnavailable && a.reason == "policy_stale":
				if a.got.Before(crashed.Add(maxStaleness / 2)) {
					t.Errorf("proxy %d: high-risk path refused as stale %v after the crash, before max_staleness (%v)", proxy+1, a.got.Sub(crashed), maxStaleness)
				}
				if a.sent.After(freshAt[proxy]) {
					t.Errorf("proxy %d: high-risk path refused as stale %v after the proxy was fresh again", proxy+1, a.sent.Sub(freshAt[proxy]))
				}
			default:
				t.Errorf("proxy %d: high-risk path of a valid device during the failover: %d %s", proxy+1, a.status, a.reason)
			}
		}
	}
}

func (m *failoverMonitor) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var parts []string
	for proxy := range len(m.answers) {
		n := map[int]int{}
		for _, a := range m.answers[proxy] {
			n[a.status]++
		}
		parts = append(parts, fmt.Sprintf("proxy %d: %d×200, %d×503", proxy+1, n[http.StatusOK], n[http.StatusServiceUnavailable]))
	}
	return strings.Join(parts, "; ")
}

// failoverMetric reads one metric of a proxy's /metrics.
func failoverMetric(metricsURL, name string) (float64, error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", metricsURL, name)
}

// failoverWaitSynced returns a time by which the proxy had synced its
// policy after at (from its /metrics).
func failoverWaitSynced(t *testing.T, metricsURL string, at time.Time, timeout time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		// The sync happened after at when even counted from before the
		// scrape it is; it happened before the answer came back.
		scraped := time.Now()
		stale, err := failoverMetric(metricsURL, "devicegate_proxy_policy_staleness_seconds")
		if err == nil && scraped.Add(-time.Duration(stale*float64(time.Second))).After(at) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no policy sync within %v of the promotion (%v %v)", metricsURL, timeout, stale, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failoverWaitSeq waits until the proxy applied the change seq.
func failoverWaitSeq(t *testing.T, metricsURL string, seq int64, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		got, err := failoverMetric(metricsURL, "devicegate_proxy_policy_seq")
		if err == nil && int64(got) >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: policy seq %v after %v, want >= %d (%v)", metricsURL, got, timeout, seq, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failoverWaitListeners waits until n sessions LISTEN on the policy channel of the
// database, on the server the DSN reaches now (the new primary).
func failoverWaitListeners(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var got int
		err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query = $1`, "LISTEN "+postgres.PolicyChannel).Scan(&got)
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions LISTEN on the new primary after 30 s, want %d (%v)", got, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failoverRetry calls f until it succeeds, for 10 s: the test's own
// connections may meet the failover once more.
func failoverRetry[T any](t *testing.T, what string, f func() (T, error)) T {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		v, err := f()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
