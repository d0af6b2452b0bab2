package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// partitionCatchUpGoal is issue 12's goal for a proxy that comes back
// after N revocations: every one of them applied within this time.
const partitionCatchUpGoal = 2 * time.Second

// TestPartitionProxyFromDatabase runs `devicegate proxy` (the real binary,
// PostgreSQL store, max_staleness 2 s) in a network namespace of its own,
// with two veth links to the host: one that its clients and the back-office
// app use, and one to PostgreSQL. The second link is cut:
//   - the normal path keeps answering 200 throughout;
//   - the high-risk path with a valid device keeps passing until about
//     max_staleness, then answers 503 policy_stale until the link is back;
//   - meanwhile devices are revoked: two of kim's (each logged in through
//     the proxy) and DEVICEGATE_PARTITION_REVOCATIONS others (1,000 by
//     default; issue 12's long form is 100,000);
//   - the link comes back and the proxy catches up by itself, without a
//     restart: its policy reaches the store's seq, no revoked device passes
//     at any moment, the valid one passes again, and none of the revoked
//     devices is left in its snapshot. The catch-up must stay under 2 s.
func TestPartitionProxyFromDatabase(t *testing.T) { testPartition(t, false) }

// TestPartitionEdgeProxyFromCAFeed is the same partition for an edge proxy
// (no database, policy from the CA's feed over mTLS): the link cut is the
// one to the CA (`devicegate serve`, on PostgreSQL in the host's namespace).
func TestPartitionEdgeProxyFromCAFeed(t *testing.T) { testPartition(t, true) }

func testPartition(t *testing.T, viaFeed bool) {
	ns := newNetns(t)
	front := ns.link(0) // clients and the back-office app: stays up
	cutLink := ns.link(1)
	var pg *pgtest.Server
	if viaFeed {
		pg = pgtest.Start(t) // the CA reaches it on loopback
	} else {
		pg = pgtest.StartReachable(t, cutLink.HostIP, cutLink.CIDR)
	}
	dsn := pg.NewDatabase(t)
	bin := buildBinary(t)
	bulk := partitionRevocations(t, 1000)

	const user, password = "shop:kim", "kim-backoffice-pw"
	hash, err := secrets.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	// The back-office app listens on the host's end of the front link:
	// the proxy reaches it while its other link is cut.
	boLn, err := net.Listen("tcp", front.HostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	bo := httptest.NewUnstartedServer(backoffice.New([]backoffice.User{{Name: user, PasswordHash: hash}}))
	bo.Listener.Close()
	bo.Listener = boLn
	bo.Start()
	defer bo.Close()

	// The test's own config reaches PostgreSQL on loopback; a database
	// proxy's, in the namespace, over the cut link (both share the data
	// directory: the CA's keys, the proxy's server certificate). The CA
	// of the feed case listens on the host's end of the cut link.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "devicegate.yaml")
	proxyCfg := filepath.Join(dir, "proxy.yaml")
	snapshotFile := filepath.Join(dir, "data", "proxy-snapshot.json")
	proxyDSN := strings.Replace(dsn, "@127.0.0.1:", "@"+cutLink.HostIP+":", 1)
	for file, d := range map[string]string{cfg: dsn, proxyCfg: proxyDSN} {
		// The proxy listens on the namespace's end of the front link, an
		// address that exists only between this test's veth ends.
		conf := fmt.Sprintf(`data_dir: data
allow_public_listen: true
log: {level: warn}
database: {driver: postgres, dsn: %q}
tls: {hosts: [localhost, %s]}
ca: {listen: %s:0}
portal: {listen: 127.0.0.1:0}
proxy:
  listen: %s:0
  admin_listen: %s:0
  max_staleness: 2s
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
        - {path: /products, point: products}
`, d, cutLink.HostIP, cutLink.HostIP, front.NSIP, front.NSIP, bo.URL, bo.URL+"/whoami")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	a, tenant, kim := protectedShop(t, cfg, "cs-supervisor", 3)
	defer a.Close()
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Keys().Root)
	began := time.Now()
	bulkDevices := issueBulkDevices(t, a, tenant.ID, hash, bulk)
	t.Logf("%d devices to revoke during the partition issued in %v", len(bulkDevices), time.Since(began).Round(time.Millisecond))
	if viaFeed {
		proxyCfg, snapshotFile = startFeedForEdge(t, bin, cfg, cutLink, roots)
	}

	name, args := ns.command(bin, "proxy", "--config", proxyCfg)
	proc := startProc(t, name, filepath.Join(dir, "proxy.log"), []string{"proxy_url", "metrics_url"}, args...)
	proxyURL, metricsURL := proc.urls["proxy_url"], proc.urls["metrics_url"]
	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy's certificate names localhost; its address is the
	// namespace's end of the front link.
	proxyAddr := net.JoinHostPort(front.NSIP, u.Port())
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	clients := map[string]*http.Client{}
	deviceIDs := map[string]string{}
	for _, name := range []string{"valid", "revoked-early", "revoked-late"} {
		c, id := faultDevice(t, ctx, a.ca, tenant.ID, kim.ID, roots)
		clients[name], deviceIDs[name] = c, id
	}
	for _, c := range append([]*http.Client{plain}, clients["valid"], clients["revoked-early"], clients["revoked-late"]) {
		c.Transport.(*http.Transport).DialContext = dialOnly(proxyAddr)
	}
	for name, c := range clients {
		waitStatus(t, name+" device on the high-risk path before the partition", 20*time.Second, func() (int, string) {
			if resp, err := c.PostForm(proxyURL+"/login", url.Values{"username": {user}, "password": {password}}); err == nil {
				resp.Body.Close()
			}
			return proxyGet(c, proxyURL+"/orders/sold")
		}, http.StatusOK)
	}

	// Normal traffic in the background, with and without a certificate.
	var mu sync.Mutex
	var normalOK int
	var normalFailed []string
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for loadCtx.Err() == nil {
			for _, c := range []*http.Client{plain, clients["valid"]} {
				status, reason := proxyGet(c, proxyURL+"/products")
				mu.Lock()
				if status == http.StatusOK {
					normalOK++
				} else {
					normalFailed = append(normalFailed, fmt.Sprintf("%d %s", status, reason))
				}
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { stopLoad(); wg.Wait() }()

	// Cut. A revocation right away: the proxy cannot learn it, and the
	// device must fail closed with every other one once the policy is stale.
	cutLink.cut()
	cut := time.Now()
	// Beside the probes below: the proxy may have been cut off inside an
	// audit transaction, whose row lock PostgreSQL holds for up to 5 s
	// (store/postgres abandonedTxAfter) and a revocation waits for it.
	revokedEarly := make(chan error, 1)
	go func() {
		_, err := a.ca.RevokeDevice(ctx, tenant.ID, deviceIDs["revoked-early"], store.ReasonKeyCompromise, cliActor())
		revokedEarly <- err
	}()
	passed := 0
	var staleAt time.Time
	for staleAt.IsZero() {
		status, reason := proxyGet(clients["valid"], proxyURL+"/orders/sold")
		switch {
		case status == http.StatusOK:
			passed++
		case status == http.StatusServiceUnavailable && reason == "policy_stale":
			staleAt = time.Now()
		default:
			t.Fatalf("high-risk path after the cut: %d %s", status, reason)
		}
		if time.Since(cut) > 30*time.Second {
			t.Fatal("the high-risk path still passes 30 s after the proxy lost PostgreSQL (max_staleness 2 s)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if passed == 0 || staleAt.Sub(cut) < time.Second {
		t.Errorf("the high-risk path failed closed %v after the cut (%d passes before), not after about max_staleness (2 s)", staleAt.Sub(cut), passed)
	}

	if err := <-revokedEarly; err != nil {
		t.Fatal(err)
	}
	// The revocations of the partition, then one more of kim's.
	began = time.Now()
	revokeAll(t, a.store, tenant.ID, bulkDevices)
	revokeTook := time.Since(began)
	if _, err := a.ca.RevokeDevice(ctx, tenant.ID, deviceIDs["revoked-late"], store.ReasonKeyCompromise, cliActor()); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients {
		if status, reason := proxyGet(c, proxyURL+"/orders/sold"); status != http.StatusServiceUnavailable || reason != "policy_stale" {
			t.Fatalf("%s device on the high-risk path while the link is cut: %d %s, want 503 policy_stale", name, status, reason)
		}
	}
	latest, err := a.store.PolicyChangesSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seq := metricValue(t, metricsURL, "devicegate_proxy_policy_seq"); seq >= float64(latest.Seq) {
		t.Fatalf("the proxy has policy seq %v while cut off, the store %d: the link was not cut", seq, latest.Seq)
	}

	// Back: the proxy catches up by itself.
	cutLink.restore()
	restored := time.Now()
	var seqAt, servedAt time.Time
	for seqAt.IsZero() || servedAt.IsZero() {
		if seqAt.IsZero() && metricValue(t, metricsURL, "devicegate_proxy_policy_seq") >= float64(latest.Seq) {
			seqAt = time.Now()
		}
		if servedAt.IsZero() {
			if status, _ := proxyGet(clients["valid"], proxyURL+"/orders/sold"); status == http.StatusOK {
				servedAt = time.Now()
			}
		}
		// Not one pass of a revoked device while the proxy catches up:
		// fresh again must mean caught up.
		for _, name := range []string{"revoked-early", "revoked-late"} {
			if status, _ := proxyGet(clients[name], proxyURL+"/orders/sold"); status == http.StatusOK {
				log, _ := os.ReadFile(proc.log)
				t.Fatalf("%s device passed the high-risk path %v after the link came back (policy seq applied: %v)\nproxy log:\n%s",
					name, time.Since(restored).Round(time.Millisecond), !seqAt.IsZero(), tail(log))
			}
		}
		if time.Since(restored) > 60*time.Second {
			t.Fatalf("60 s after the link came back: policy seq caught up %v, high-risk path served %v", !seqAt.IsZero(), !servedAt.IsZero())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"revoked-early", "revoked-late"} {
		if status, reason := proxyGet(clients[name], proxyURL+"/orders/sold"); status != http.StatusForbidden && status != 0 {
			t.Errorf("%s device on the high-risk path after the catch-up: %d %s, want refused", name, status, reason)
		}
	}
	caughtUp := max(seqAt.Sub(restored), servedAt.Sub(restored))
	if caughtUp > partitionCatchUpGoal {
		t.Errorf("catch-up after the link came back took %v, goal %v", caughtUp, partitionCatchUpGoal)
	}
	snap := waitSnapshotFile(t, snapshotFile, latest.Seq)
	left := 0
	for _, id := range append(bulkDevices, deviceIDs["revoked-early"], deviceIDs["revoked-late"]) {
		if _, ok := snap.Devices[id]; ok {
			left++
		}
	}
	if left > 0 {
		t.Errorf("%d revoked devices are still in the proxy's policy after the catch-up", left)
	}
	if _, ok := snap.Devices[deviceIDs["valid"]]; !ok {
		t.Error("the valid device is missing from the proxy's policy after the catch-up")
	}
	stopLoad()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(normalFailed) > 0 {
		t.Errorf("the normal path failed %d times (of %d) during the partition: %v", len(normalFailed), normalOK+len(normalFailed), normalFailed[:min(5, len(normalFailed))])
	}
	t.Logf("cut: high-risk passed %d times, then 503 policy_stale after %v; %d revocations during the partition in %v (%.0f/s); "+
		"link back: policy seq %d applied after %v, high-risk path served after %v; normal path %d/%d OK",
		passed, staleAt.Sub(cut).Round(time.Millisecond), len(bulkDevices)+2, revokeTook.Round(time.Millisecond),
		float64(len(bulkDevices))/revokeTook.Seconds(), latest.Seq, seqAt.Sub(restored).Round(time.Millisecond),
		servedAt.Sub(restored).Round(time.Millisecond), normalOK, normalOK+len(normalFailed))
}

// startFeedForEdge starts the CA (`devicegate serve` of cfg, on the host's
// end of link), makes an edge proxy's credentials and its own server
// certificate (localhost, from a throwaway PKI whose root it adds to
// roots), and writes the edge's config from the database proxy's
// (proxy.yaml beside cfg) with the CA's feed instead of the database. It
// returns the edge's config and snapshot file.
func startFeedForEdge(t *testing.T, bin, cfg string, link *vethLink, roots *x509.CertPool) (string, string) {
	t.Helper()
	dir := filepath.Dir(cfg)
	caProc := startProc(t, bin, filepath.Join(dir, "ca.log"), []string{"ca_url"}, "serve", "--config", cfg)
	u, err := url.Parse(caProc.urls["ca_url"])
	if err != nil {
		t.Fatal(err)
	}
	caURL := "https://" + net.JoinHostPort(link.HostIP, u.Port())
	edgeDir := t.TempDir()
	creds := filepath.Join(edgeDir, "creds")
	mustCLI(t, "ca", "--config", cfg, "proxy-cert", "--name", "edge-1", "--stores", "shop", "--out", creds)
	pki := testpki.New(t)
	roots.AddCert(pki.Root)
	server := pki.ServerCert(t, "localhost")
	var chain []byte
	for _, der := range server.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(edgeDir, "server.crt"), chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(edgeDir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "proxy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var edge []string
	for line := range strings.Lines(string(conf)) {
		switch {
		case strings.HasPrefix(line, "database:"), strings.HasPrefix(line, "ca:"), strings.HasPrefix(line, "portal:"):
		case strings.HasPrefix(line, "tls:"):
			edge = append(edge, "tls: {cert_file: server.crt, key_file: server.key}\n")
		case line == "proxy:\n":
			edge = append(edge, line, fmt.Sprintf("  feed: {ca_url: %q, credentials_dir: %q}\n", caURL, creds))
		default:
			edge = append(edge, line)
		}
	}
	edgeCfg := filepath.Join(edgeDir, "edge.yaml")
	if err := os.WriteFile(edgeCfg, []byte(strings.Join(edge, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "check-config", edgeCfg)
	return edgeCfg, filepath.Join(edgeDir, "data", "proxy-snapshot.json")
}

// partitionRevocations is the number of revocations made while a proxy is
// cut off: def, or DEVICEGATE_PARTITION_REVOCATIONS (issue 12's long form
// is 100000).
func partitionRevocations(t *testing.T, def int) int {
	t.Helper()
	if s := os.Getenv("DEVICEGATE_PARTITION_REVOCATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DEVICEGATE_PARTITION_REVOCATIONS=%q: want a positive number", s)
		}
		return n
	}
	return def
}

// issueBulkDevices issues n devices through the CA, store.MaxDevicesLimit
// per sub-account of tenant (sub-accounts bulk0, bulk1, ... created here),
// and returns their ids. The sub-accounts are made one after the other
// before any issuance: on PostgreSQL a sub-account created while another
// one of the same store issues can die in a deadlock (40P01), a store
// finding this test does not try to cover.
func issueBulkDevices(t *testing.T, a *app, tenantID, passwordHash string, n int) []string {
	t.Helper()
	ctx := context.Background()
	per := store.MaxDevicesLimit
	subIDs := make([]string, (n+per-1)/per)
	for i := range subIDs {
		sub, err := a.store.CreateSubAccount(ctx, store.NewSubAccount{TenantID: tenantID, Name: fmt.Sprintf("bulk%d", i), Role: "customer-service", PasswordHash: passwordHash}, cliActor())
		if err != nil {
			t.Fatalf("create sub-account: %v", err)
		}
		if _, err := a.store.EnablePhone(ctx, tenantID, sub.ID, []byte("partition-test-totp-secret"), cliActor()); err != nil {
			t.Fatalf("enable phone: %v", err)
		}
		if _, err := a.store.SetProtection(ctx, tenantID, sub.ID, store.Protection{Enabled: true, MaxDevices: per}, cliActor()); err != nil {
			t.Fatalf("protect: %v", err)
		}
		subIDs[i] = sub.ID
	}
	ids := make([]string, n)
	parallel(t, n, func(k int) error {
		id, err := issueOne(ctx, a.ca, tenantID, subIDs[k/per])
		ids[k] = id
		return err
	})
	return ids
}

// issueOne issues a device of the sub-account (a fresh key) and returns
// its id.
func issueOne(ctx context.Context, authority *ca.Authority, tenantID, subID string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return "", err
	}
	is, err := authority.Issue(ctx, ca.IssueRequest{TenantID: tenantID, SubID: subID, CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		return "", fmt.Errorf("issue: %w", err)
	}
	return is.Device.ID, nil
}

// parallel runs do(0..n-1) on 8 goroutines and fails the test with the
// first error.
func parallel(t *testing.T, n int, do func(i int) error) {
	t.Helper()
	work := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := do(i); err != nil {
					errs <- err
					for range work { // let the feeder finish
					}
					return
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// revokeAll revokes the devices in the store, 8 at a time. It goes to the
// store, not through the CA, whose CRL refresh after every single
// revocation would make this loop quadratic; what the proxy sees is the
// same store rows and notifications.
func revokeAll(t *testing.T, st store.Store, tenantID string, ids []string) {
	t.Helper()
	parallel(t, len(ids), func(i int) error {
		_, err := st.RevokeDevice(context.Background(), tenantID, ids[i], store.ReasonCessationOfOperation, cliActor())
		return err
	})
}

// dialOnly connects to addr whatever the URL's host (the proxy's
// certificate names localhost, its address is in the namespace).
func dialOnly(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}

// metricValue reads one unlabelled gauge or counter from a Prometheus
// text page.
func metricValue(t *testing.T, metricsURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found at %s", name, metricsURL)
	return 0
}

// partitionSnapshot is what the test reads of the proxy's snapshot file.
type partitionSnapshot struct {
	Seq     int64
	Devices map[string]json.RawMessage
}

// waitSnapshotFile waits until the proxy's snapshot file (written at most
// once a second) holds seq at least and returns it.
func waitSnapshotFile(t *testing.T, path string, seq int64) partitionSnapshot {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var env struct{ Payload json.RawMessage }
		var s partitionSnapshot
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &env)
		}
		if err == nil {
			err = json.Unmarshal(env.Payload, &s)
		}
		if err == nil && s.Seq >= seq {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy snapshot %s: seq %d (%v) after 10 s, want %d", path, s.Seq, err, seq)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
