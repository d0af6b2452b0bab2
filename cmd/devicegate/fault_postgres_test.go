package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestKillPostgresUnderLoad crashes PostgreSQL (pg_ctl stop -m immediate)
// under a proxy (`devicegate proxy`, the real binary, on the PostgreSQL
// store, max_staleness 2 s) that serves a normal path (with and without a
// device certificate) and a high-risk path, and starts it again:
//   - the normal path answers 200 throughout;
//   - the high-risk path keeps passing right after the crash, is refused
//     with 503 policy_stale not before about max_staleness, and never
//     passes while PostgreSQL is down;
//   - once PostgreSQL is back the proxy recovers by itself: the high-risk
//     path passes again, its LISTEN connection is back, and a revocation
//     made after the recovery refuses the device within seconds.
//
// Short form: one crash. Long form: DEVICEGATE_FAULT_ROUNDS=100 runs
// 100/10 = 10 crashes (about 10 s each).
func TestKillPostgresUnderLoad(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	pgAdmin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pgAdmin.Close()
	// pgtest runs with synchronous_commit=off, which loses the last
	// commits in a crash; this database commits durably, as in production.
	var dbName string
	if err := pgAdmin.QueryRow(`SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	if _, err := pgAdmin.Exec(`ALTER DATABASE ` + dbName + ` SET synchronous_commit = on`); err != nil {
		t.Fatal(err)
	}
	pgAdmin.SetMaxIdleConns(0) // later sessions take the setting
	bin := buildBinary(t)
	rounds := 1
	if os.Getenv("DEVICEGATE_FAULT_ROUNDS") != "" {
		rounds = max(1, faultRounds(t, 1)/10)
	}

	const user, password = "shop:kim", "kim-backoffice-pw"
	hash, err := secrets.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	bo := httptest.NewServer(backoffice.New([]backoffice.User{{Name: user, PasswordHash: hash}}))
	defer bo.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "devicegate.yaml")
	conf := fmt.Sprintf(`data_dir: data
log: {level: warn}
database: {driver: postgres, dsn: %q}
ca: {listen: 127.0.0.1:0}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  max_staleness: 2s
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
        - {path: /products, point: products}
`, dsn, bo.URL, bo.URL+"/whoami")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, tenant, sub := protectedShop(t, cfg, "cs-supervisor", 2)
	defer a.Close()
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Keys().Root)

	proc := startProc(t, bin, filepath.Join(dir, "proxy.log"), []string{"proxy_url"}, "proxy", "--config", cfg)
	proxyURL := proc.urls["proxy_url"]
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	for round := 1; round <= rounds; round++ {
		began := time.Now()
		// A device of kim, logged in to the app through the proxy.
		dev, deviceID := faultDevice(t, ctx, a.ca, tenant.ID, sub.ID, roots)
		waitStatus(t, "high-risk path before the crash", 10*time.Second, func() (int, string) {
			if resp, err := dev.PostForm(proxyURL+"/login", url.Values{"username": {user}, "password": {password}}); err == nil {
				resp.Body.Close()
			}
			return proxyGet(dev, proxyURL+"/orders/sold")
		}, http.StatusOK)

		// Normal traffic in the background, with and without a certificate.
		var mu sync.Mutex
		var normalOK int
		var normalFailed []string
		loadCtx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		loadRuns := make(chan struct{}) // closed after the first round of the load
		go func() {
			defer wg.Done()
			for first := true; loadCtx.Err() == nil; first = false {
				for _, c := range []*http.Client{plain, dev} {
					status, reason := proxyGet(c, proxyURL+"/products")
					mu.Lock()
					if status == http.StatusOK {
						normalOK++
					} else {
						normalFailed = append(normalFailed, fmt.Sprintf("%d %s", status, reason))
					}
					mu.Unlock()
				}
				if first {
					close(loadRuns)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()

		// Crash in the middle of the load. High-risk passes until
		// max_staleness, then 503.
		<-loadRuns
		pg.Crash(t)
		crashed := time.Now()
		passedAfterCrash := 0
		var staleAt time.Time
		for staleAt.IsZero() {
			status, reason := proxyGet(dev, proxyURL+"/orders/sold")
			switch {
			case status == http.StatusOK:
				passedAfterCrash++
			case status == http.StatusServiceUnavailable && reason == "policy_stale":
				staleAt = time.Now()
			default:
				t.Fatalf("round %d: high-risk path after the crash: %d %s", round, status, reason)
			}
			if time.Since(crashed) > 30*time.Second {
				t.Fatalf("round %d: high-risk path still passes 30 s after PostgreSQL went down (max_staleness 2 s)", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if passedAfterCrash == 0 {
			t.Errorf("round %d: the high-risk path failed at once after the crash, not after max_staleness", round)
		}
		if d := staleAt.Sub(crashed); d < time.Second {
			t.Errorf("round %d: the high-risk path failed closed %v after the crash, before max_staleness (2 s)", round, d)
		}
		// While PostgreSQL stays down it never passes.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			if status, reason := proxyGet(dev, proxyURL+"/orders/sold"); status != http.StatusServiceUnavailable || reason != "policy_stale" {
				t.Fatalf("round %d: high-risk path while PostgreSQL is down: %d %s", round, status, reason)
			}
			time.Sleep(50 * time.Millisecond)
		}

		// Back: the proxy recovers without a restart.
		pg.Restart(t)
		restarted := time.Now()
		waitStatus(t, "high-risk path after PostgreSQL is back", 60*time.Second, func() (int, string) { return proxyGet(dev, proxyURL+"/orders/sold") }, http.StatusOK)
		recovered := time.Since(restarted)
		stopLoad()
		wg.Wait()
		mu.Lock()
		if len(normalFailed) > 0 {
			t.Errorf("round %d: the normal path failed %d times (of %d) during the outage: %v", round, len(normalFailed), normalOK+len(normalFailed), normalFailed[:min(5, len(normalFailed))])
		}
		mu.Unlock()
		waitListening(t, pgAdmin)
		revoked := time.Now()
		if _, err := a.ca.RevokeDevice(ctx, tenant.ID, deviceID, store.ReasonKeyCompromise, cliActor()); err != nil {
			t.Fatalf("round %d: revoke after recovery: %v", round, err)
		}
		waitStatus(t, "revoked device after recovery", 10*time.Second, func() (int, string) { return proxyGet(dev, proxyURL+"/orders/sold") }, http.StatusForbidden, 0)
		t.Logf("round %d (%v): %d high-risk passes after the crash, 503 policy_stale after %v, recovered %v after the restart, revocation effective after %v, normal path %d/%d OK",
			round, time.Since(began).Round(time.Millisecond), passedAfterCrash, staleAt.Sub(crashed).Round(time.Millisecond), recovered.Round(time.Millisecond),
			time.Since(revoked).Round(time.Millisecond), normalOK, normalOK+len(normalFailed))
		dev.CloseIdleConnections()
	}
	proc.kill()
}

// faultDevice issues a device certificate of the sub-account in process
// and returns a client (cookie jar, certificate) for the proxy.
func faultDevice(t *testing.T, ctx context.Context, authority *ca.Authority, tenantID, subID string, roots *x509.CertPool) (*http.Client, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Issue(ctx, ca.IssueRequest{TenantID: tenantID, SubID: subID, CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: key}
	for _, c := range is.Chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}, is.Device.ID
}

// proxyGet returns the status and the proxy's X-Devicegate-Reason of a GET
// (status 0: no answer).
func proxyGet(c *http.Client, u string) (int, string) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Devicegate-Reason")
}

// waitStatus polls get until it answers one of want.
func waitStatus(t *testing.T, what string, timeout time.Duration, get func() (int, string), want ...int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, reason := get()
		for _, w := range want {
			if status == w {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %s after %v, want %v", what, status, reason, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitListening waits until a session LISTENs on the policy channel again
// (the proxy's notification connection, re-established after the crash).
func waitListening(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE query = $1`, "LISTEN "+postgres.PolicyChannel).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no LISTEN %s session 30 s after PostgreSQL is back (%d sessions, %v)", postgres.PolicyChannel, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
