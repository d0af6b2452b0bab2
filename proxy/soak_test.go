package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestSoakMixedTrafficWithRevocations runs mixed traffic through the
// gateway (high-risk and normal pages, kept-alive and new connections)
// while devices are replaced and revoked every few seconds, and checks:
//   - no request on a revoked certificate is let through once the
//     propagation bound has passed since the revocation was committed;
//   - the legitimate traffic keeps passing;
//   - heap, RSS and goroutines are stable: growth < 10 % between the end of
//     the warm-up (a fifth of the run, minute 2 of 10) and the end.
//
// make test runs a 20 s form; the full one (10 minutes) is
//
//	DEVICEGATE_SOAK_DURATION=10m go test -run Soak -timeout 20m -v ./proxy/
func TestSoakMixedTrafficWithRevocations(t *testing.T) {
	duration := 20 * time.Second
	if v := os.Getenv("DEVICEGATE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("DEVICEGATE_SOAK_DURATION: %v", err)
		}
		duration = d
	}
	const (
		propagation  = time.Second     // the promise: a revocation reaches the proxy within this
		revokeEvery  = 2 * time.Second // a device replaced and revoked this often
		workers      = 4
		maxRequests  = 5_000_000 // bounds the loop besides the time
		syncInterval = 50 * time.Millisecond
	)
	// The store is a PostgreSQL server in its own process (as for several
	// proxies), so this process's RSS is the gateway's, the clients' and
	// the upstream app's: an in-process SQLite's page cache and growing
	// audit table would be counted as the proxy's otherwise.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := postgres.Open(context.Background(), pgtest.Start(t).NewDatabase(t), store.Options{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, st, time.Minute, nil)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	policyDone := make(chan struct{})
	go func() { defer close(policyDone); e.policy.Run(ctx, syncInterval) }()
	defer func() { cancel(); <-policyDone }()

	type device struct {
		user      string
		id        string
		client    *http.Client
		revokedAt atomic.Int64 // unix nanos once the revocation is committed; 0 while live
	}
	var (
		mu      sync.Mutex
		live    = map[string]*device{}
		revoked []*device // still probed until retired
	)
	enroll := func(user string) *device {
		cert := e.device(user, testpki.LeafOptions{})
		d := &device{user: user, id: e.devices[user].ID, client: e.soakClient(&cert)}
		e.login(d.client, user)
		return d
	}
	for _, u := range []string{"alice", "bob"} {
		live[u] = enroll(u)
	}

	var (
		requests, allowed, refusedRevoked, violations, failures atomic.Int64
		stop                                                    atomic.Bool
		wg                                                      sync.WaitGroup
	)
	anonymous := e.soakClient(nil)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && requests.Load() < maxRequests; i++ {
				mu.Lock()
				d := live[[]string{"alice", "bob"}[(i+w)%2]]
				var probe *device
				if len(revoked) > 0 && i%4 == 0 {
					probe = revoked[i%len(revoked)]
				}
				mu.Unlock()
				switch {
				case probe != nil:
					// A revoked device asks for a high-risk page.
					started := time.Now()
					status := soakGet(probe.client, e.url+"/orders/sold")
					requests.Add(1)
					at := probe.revokedAt.Load()
					if status == http.StatusOK && started.UnixNano() > at+int64(propagation) {
						violations.Add(1)
						t.Errorf("revoked device %s let through %v after its revocation", probe.id, started.Sub(time.Unix(0, at)))
					} else if status == http.StatusForbidden {
						refusedRevoked.Add(1)
					}
				case i%5 == 0:
					if soakGet(anonymous, e.url+"/products") != http.StatusOK {
						failures.Add(1)
					}
					requests.Add(1)
				default:
					status := soakGet(d.client, e.url+"/orders/sold")
					requests.Add(1)
					switch {
					case status == http.StatusOK:
						allowed.Add(1)
					case d.revokedAt.Load() == 0:
						// Refused while live: only the moment of replacement
						// may race (the device is swapped before it is revoked).
						failures.Add(1)
					}
				}
			}
		}()
	}

	type sample struct {
		heap, rss  uint64
		goroutines int
	}
	profiles := os.Getenv("DEVICEGATE_SOAK_PROFILE") // a directory: heap profiles at warm-up and end
	measure := func(name string) sample {
		// A collection that also returns free pages to the OS: otherwise
		// RSS counts what the runtime keeps idle until its scavenger gets
		// to it (tens of MB here), which says nothing about a leak.
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if profiles != "" {
			f, err := os.Create(filepath.Join(profiles, name+".heap"))
			if err != nil {
				t.Fatal(err)
			}
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
		return sample{heap: ms.HeapInuse, rss: rssBytes(t), goroutines: runtime.NumGoroutine()}
	}
	start := time.Now()
	warm := start.Add(duration / 5)
	var atWarm sample
	warmed := false
	replaced := 0
	for time.Since(start) < duration {
		time.Sleep(revokeEvery)
		if !warmed && time.Now().After(warm) {
			atWarm, warmed = measure("warm"), true
		}
		user := []string{"alice", "bob"}[replaced%2]
		mu.Lock()
		old := live[user]
		mu.Unlock()
		// Free the quota slot first (N = 2 per sub-account): retire the
		// oldest revoked device of this user.
		mu.Lock()
		kept := revoked[:0]
		for _, r := range revoked {
			if r.user == user {
				r.client.CloseIdleConnections()
				continue
			}
			kept = append(kept, r)
		}
		revoked = kept
		mu.Unlock()
		next := enroll(user)
		mu.Lock()
		live[user] = next
		mu.Unlock()
		if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, old.id, store.ReasonSuperseded, actor); err != nil {
			t.Fatal(err)
		}
		old.revokedAt.Store(time.Now().UnixNano())
		mu.Lock()
		revoked = append(revoked, old)
		mu.Unlock()
		replaced++
	}
	end := measure("end") // under the same traffic as the warm-up sample
	stop.Store(true)
	wg.Wait()
	for _, d := range live {
		d.client.CloseIdleConnections()
	}
	for _, d := range revoked {
		d.client.CloseIdleConnections()
	}
	anonymous.CloseIdleConnections()
	t.Logf("%v: %d requests (%d high-risk allowed, %d refused on revoked certificates), %d devices revoked, %d unexpected refusals",
		duration, requests.Load(), allowed.Load(), refusedRevoked.Load(), replaced, failures.Load())
	t.Logf("after warm-up: heap %d KiB, RSS %d KiB, %d goroutines; at the end: heap %d KiB, RSS %d KiB, %d goroutines",
		atWarm.heap>>10, atWarm.rss>>10, atWarm.goroutines, end.heap>>10, end.rss>>10, end.goroutines)
	if violations.Load() > 0 {
		t.Fatalf("%d requests let through on revoked certificates", violations.Load())
	}
	if refusedRevoked.Load() == 0 || allowed.Load() == 0 || replaced < 2 {
		t.Fatalf("the run did not exercise both sides: %d allowed, %d refused revoked, %d revoked", allowed.Load(), refusedRevoked.Load(), replaced)
	}
	// A live device refused outside a swap would show up in numbers, not one.
	if f := failures.Load(); f > int64(2*replaced)+2 {
		t.Fatalf("%d unexpected refusals or errors of legitimate requests", f)
	}
	// Growth < 10 %, with a floor of slack for a run too short to settle
	// (at 10 minutes the floors are far below what a leak would add).
	grew := func(name string, before, after, floor uint64) {
		if after > before && after-before > max(before/10, floor) {
			t.Errorf("%s grew from %d to %d (> 10 %%)", name, before, after)
		}
	}
	grew("heap", atWarm.heap, end.heap, 4<<20)
	grew("RSS", atWarm.rss, end.rss, 8<<20)
	grew("goroutines", uint64(atWarm.goroutines), uint64(end.goroutines), 20)
}

// soakClient is a browser with a certificate (or none) that keeps its
// connection alive, with a bounded pool.
func (e *env) soakClient(cert *tls.Certificate) *http.Client {
	c := e.client(cert)
	tr := c.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 2
	tr.IdleConnTimeout = 30 * time.Second
	return c
}

// soakGet returns the status of one GET (0 on a transport error).
func soakGet(c *http.Client, u string) int {
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// rssBytes is this process's resident set (Linux).
func rssBytes(t *testing.T) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
