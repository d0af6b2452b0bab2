package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestMultiNode runs devicegate as separate processes on one PostgreSQL,
// as an installation on several hosts does: two CA/portal nodes
// (`devicegate serve`) and three proxies (`devicegate proxy`), each with a
// data directory of its own that holds a copy of the CA directory and the
// seal key (what an operator copies to another host). The third proxy
// reaches PostgreSQL through a TCP relay the test can cut. A fourth, edge
// proxy has no database: node B's feed brings it the policy. One setup
// serves every subtest:
//   - PortalSession: an owner session made on node A works on node B
//     (pages and CSRF-protected actions); logging out on B ends it on A.
//   - RevocationReachesEveryProxy: a device revoked in the owner console,
//     on A and B in turn, is refused by every proxy; p50/p99 from the
//     revocation call to the last database proxy refusing, and to the
//     edge proxy refusing.
//   - QuotaRace: enrollments of one sub-account (quota N) sent to both CA
//     nodes at once end with exactly N certificates, in every round.
//   - CRLAndOCSPAgree: both nodes' CRLs list the same revocations as the
//     store, and their OCSP answers agree, also right after a revocation
//     made on the other node.
//   - ProxyCatchesUp: a proxy killed, or cut off from PostgreSQL, while
//     devices are revoked and enrolled, catches up by seq once back and
//     never lets a revoked device through.
//
// Short form: the revocations and quota rounds that fit in a few seconds
// each. Long form: DEVICEGATE_MULTINODE_ROUNDS=1000 (quota rounds) and
// DEVICEGATE_MULTINODE_REVOCATIONS=1000 go test -run MultiNode ./cmd/devicegate/
func TestMultiNode(t *testing.T) {
	m := startMultiNode(t)
	t.Run("PortalSession", m.portalSession)
	t.Run("RevocationReachesEveryProxy", m.revocationReachesEveryProxy)
	t.Run("QuotaRace", m.quotaRace)
	t.Run("CRLAndOCSPAgree", m.crlAndOCSPAgree)
	t.Run("ProxyCatchesUp", m.proxyCatchesUp)
	t.Run("PortalLogoutEverywhere", m.portalLogoutEverywhere)
}

const (
	mnDBProxies = 3 // proxies on the database; the edge proxy comes after them
	mnQuota     = 3 // N of the quota race's sub-account (kim)
	mnRacers    = 4 // enrollments sent to each CA node per round
	mnLeeQuota  = 5 // lee: the devices revoked and enrolled for the proxies
)

// multiNode is the running installation.
type multiNode struct {
	bin   string
	dir   string
	a     *app // the operator's view of the store (node A's config)
	roots *x509.CertPool
	shop  store.Tenant
	kim   store.SubAccount // quota race
	lee   store.SubAccount // devices for the proxies
	cas   [2]mnCA
	pg    *sql.DB    // the test's own connection, for pg_stat_activity
	prox  []*mnProxy // 3 on the database (the third through relay), then the edge
	relay *pgRelay   // between the third proxy and PostgreSQL

	owner     *http.Client // logged in as the shop's owner on node A
	ownerCSRF string
}

type mnCA struct {
	proc      *faultProc
	caURL     string
	portalURL string // without the trailing slash
	client    *http.Client
}

type mnProxy struct {
	cfg     string
	proc    *faultProc
	url     string
	metrics string
}

func startMultiNode(t *testing.T) *multiNode {
	began := time.Now()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	m := &multiNode{bin: buildBinary(t), dir: t.TempDir()}
	var err error
	if m.pg, err = sql.Open("pgx", dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.pg.Close() })
	ctx := context.Background()

	hash, err := secrets.HashPassword("kim-backoffice-pw")
	if err != nil {
		t.Fatal(err)
	}
	bo := httptest.NewServer(backoffice.New([]backoffice.User{{Name: "shop:kim", PasswordHash: hash}}))
	t.Cleanup(bo.Close)

	caConf := fmt.Sprintf("data_dir: data\nlog: {level: warn}\ndatabase: {driver: postgres, dsn: %q}\nca: {listen: 127.0.0.1:0}\nportal: {listen: 127.0.0.1:0}\n", dsn)
	proxyConf := func(dsn string) string {
		return fmt.Sprintf(`data_dir: data
log: {level: warn}
database: {driver: postgres, dsn: %q}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  max_staleness: 3s
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
`, dsn, bo.URL, bo.URL+"/whoami")
	}
	m.relay = newPGRelay(t, dsn)
	relayed, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	relayed.Host = m.relay.addr()

	// Node A's directory gets the CA, the shop and the owner's login; the
	// other nodes get copies of its CA directory and seal key.
	cfgA := m.nodeConfig(t, "ca-a", caConf)
	a, shop, kim := protectedShop(t, cfgA, "finance", mnQuota)
	t.Cleanup(func() { a.Close() })
	m.a, m.shop, m.kim = a, shop, kim
	mustCLI(t, "admin", "--config", cfgA, "sub", "add", "shop:lee", "--role", "cs-supervisor")
	mustCLI(t, "admin", "--config", cfgA, "sub", "phone", "shop:lee")
	mustCLI(t, "admin", "--config", cfgA, "sub", "protect", "shop:lee", "--devices", strconv.Itoa(mnLeeQuota))
	if m.lee, err = a.store.GetSubAccountByName(ctx, shop.ID, "lee"); err != nil {
		t.Fatal(err)
	}
	const ownerPassword = "Shop-Owner-Pw-2718"
	pwFile := filepath.Join(m.dir, "owner-pw")
	if err := os.WriteFile(pwFile, []byte(ownerPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "admin", "--config", cfgA, "owner", "set", "shop", "--password-file", pwFile)
	m.roots = x509.NewCertPool()
	m.roots.AddCert(a.ca.Keys().Root)
	cfgs := []string{cfgA, m.nodeConfig(t, "ca-b", caConf)}
	for i := range mnDBProxies {
		d := dsn
		if i == mnDBProxies-1 {
			d = relayed.String()
		}
		m.prox = append(m.prox, &mnProxy{cfg: m.nodeConfig(t, fmt.Sprintf("proxy-%d", i+1), proxyConf(d))})
	}

	for i, cfg := range cfgs {
		p := startProc(t, m.bin, filepath.Join(filepath.Dir(cfg), "node.log"), []string{"ca_url", "portal_url"}, "serve", "--config", cfg)
		m.cas[i] = mnCA{proc: p, caURL: p.urls["ca_url"], portalURL: strings.TrimSuffix(p.urls["portal_url"], "/"),
			client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: m.roots}, MaxIdleConnsPerHost: mnRacers}}}
	}
	for _, p := range m.prox {
		m.startProxy(t, p)
	}
	// The edge: the credentials of `ca proxy-cert` and a server
	// certificate of the operator's own PKI (whose root the clients trust).
	edgeDir := filepath.Join(m.dir, "edge")
	mustCLI(t, "ca", "--config", cfgA, "proxy-cert", "--name", "edge-1", "--stores", "shop", "--out", filepath.Join(edgeDir, "creds"))
	pki := testpki.New(t)
	m.roots.AddCert(pki.Root)
	server := pki.ServerCert(t, "localhost", "127.0.0.1")
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
	edgeConf := strings.Replace(proxyConf(""), "database: {driver: postgres, dsn: \"\"}\n", "tls: {cert_file: server.crt, key_file: server.key}\n", 1)
	edgeConf = strings.Replace(edgeConf, "  upstreams:", fmt.Sprintf("  feed: {ca_url: %q, credentials_dir: creds}\n  upstreams:", m.cas[1].caURL), 1)
	edge := &mnProxy{cfg: filepath.Join(edgeDir, "edge.yaml")}
	if err := os.WriteFile(edge.cfg, []byte(edgeConf), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "check-config", edge.cfg)
	m.startProxy(t, edge)
	m.prox = append(m.prox, edge)
	m.ownerLogin(t, ownerPassword)
	t.Logf("setup (PostgreSQL, the binary, 2 CA nodes, 3 database proxies and the edge, the owner's login): %v", time.Since(began).Round(time.Millisecond))
	return m
}

// nodeConfig writes a node's config in a directory of its own and, for
// every node but the first, copies the first node's CA directory and
// seal key into its data directory.
func (m *multiNode) nodeConfig(t *testing.T, name, conf string) string {
	t.Helper()
	dir := filepath.Join(m.dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "devicegate.yaml")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if name == "ca-a" {
		return cfg
	}
	// Copied with their modes: the CA refuses keys others could read.
	first := filepath.Join(m.dir, "ca-a", "data")
	err := filepath.WalkDir(first, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(first, path)
		switch {
		case err != nil:
			return err
		case rel != "." && rel != "ca" && rel != "seal.key" && !strings.HasPrefix(rel, "ca"+string(filepath.Separator)):
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dir, "data", rel)
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "check-config", cfg)
	return cfg
}

func (m *multiNode) startProxy(t *testing.T, p *mnProxy) {
	t.Helper()
	p.proc = startProc(t, m.bin, filepath.Join(filepath.Dir(p.cfg), "node.log"), []string{"proxy_url", "metrics_url"}, "proxy", "--config", p.cfg)
	p.url, p.metrics = p.proc.urls["proxy_url"], p.proc.urls["metrics_url"]
}

// ownerLogin logs the shop's owner in on node A's portal (password, then
// the phone binding of the first login).
func (m *multiNode) ownerLogin(t *testing.T, password string) {
	t.Helper()
	portal := m.cas[0].portalURL
	m.owner = m.webClient()
	p := send(t, m.owner, "GET", portal+"/owner/login", nil, nil)
	if p = send(t, m.owner, "POST", portal+"/owner/login", url.Values{"csrf": {find(t, csrfInput, p, "login token")}, "store": {"shop"},
		"password": {password}}, nil); p.status != http.StatusSeeOther || p.location != "/owner/totp" {
		t.Fatalf("owner login on node A: %d %s\n%s", p.status, p.location, p.body)
	}
	p = send(t, m.owner, "GET", portal+"/owner/totp", nil, nil)
	code, err := totp.GenerateCode(find(t, totpOnPage, p, "owner TOTP secret"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p = send(t, m.owner, "POST", portal+"/owner/totp", url.Values{"csrf": {find(t, csrfInput, p, "CSRF token")}, "code": {code}}, nil); p.status != http.StatusSeeOther {
		t.Fatalf("owner TOTP on node A: %d\n%s", p.status, p.body)
	}
	p = send(t, m.owner, "GET", portal+"/owner/", nil, nil)
	m.ownerCSRF = find(t, csrfInput, p, "owner CSRF token")
}

// webClient is a browser without redirects, trusting the CA's root.
func (m *multiNode) webClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ownerOn is a fresh browser holding only the owner's session cookie from
// node A, for node i's portal (cookies do not tell ports apart, so the
// copy is explicit).
func (m *multiNode) ownerOn(t *testing.T, i int) *http.Client {
	t.Helper()
	from, _ := url.Parse(m.cas[0].portalURL)
	to, _ := url.Parse(m.cas[i].portalURL)
	c := m.webClient()
	for _, ck := range m.owner.Jar.Cookies(from) {
		if ck.Name == "__Host-dg_session" {
			c.Jar.SetCookies(to, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/", Secure: true}})
			return c
		}
	}
	t.Fatal("the owner has no session cookie")
	return nil
}

// ownerRevoke revokes a device of sub in node i's owner console.
func (m *multiNode) ownerRevoke(t *testing.T, owner *http.Client, i int, subID, deviceID string) {
	t.Helper()
	u := m.cas[i].portalURL + "/owner/subs/" + subID + "/devices/" + deviceID + "/revoke"
	if p := send(t, owner, "POST", u, url.Values{"csrf": {m.ownerCSRF}}, nil); p.status != http.StatusSeeOther || !strings.Contains(p.location, "ok=revoked") {
		t.Fatalf("revoke %s in node %c's owner console: %d %s\n%s", deviceID, 'A'+i, p.status, p.location, p.body)
	}
}

func (m *multiNode) portalSession(t *testing.T) {
	for i := range m.cas {
		c := m.ownerOn(t, i)
		p := send(t, c, "GET", m.cas[i].portalURL+"/owner/", nil, nil)
		if p.status != http.StatusOK || !strings.Contains(p.body, m.ownerCSRF) || !strings.Contains(p.body, "kim") {
			t.Fatalf("node %c's owner console with the session made on node A: %d %s", 'A'+i, p.status, p.location)
		}
		// A CSRF-protected action with the session's token: protection
		// of lee, set to what it is.
		if p = send(t, c, "POST", m.cas[i].portalURL+"/owner/subs/"+m.lee.ID+"/protection",
			url.Values{"csrf": {m.ownerCSRF}, "devices": {strconv.Itoa(mnLeeQuota)}}, nil); p.status != http.StatusSeeOther {
			t.Fatalf("node %c: protection with the session made on node A: %d\n%s", 'A'+i, p.status, p.body)
		}
		// Without the token the same session is refused.
		if p = send(t, c, "POST", m.cas[i].portalURL+"/owner/subs/"+m.lee.ID+"/protection",
			url.Values{"devices": {"1"}}, nil); p.status != http.StatusForbidden {
			t.Fatalf("node %c: protection without the CSRF token: %d, want 403", 'A'+i, p.status)
		}
		// A made-up session is not one.
		forged := m.webClient()
		to, _ := url.Parse(m.cas[i].portalURL)
		forged.Jar.SetCookies(to, []*http.Cookie{{Name: "__Host-dg_session", Value: strings.Repeat("A", 43), Path: "/", Secure: true}})
		if p = send(t, forged, "GET", m.cas[i].portalURL+"/owner/", nil, nil); p.status == http.StatusOK {
			t.Fatalf("node %c: a made-up session cookie opens the owner console", 'A'+i)
		}
	}
	sub, err := m.a.store.GetSubAccount(context.Background(), m.shop.ID, m.lee.ID)
	if err != nil || !sub.Protection.Enabled || sub.Protection.MaxDevices != mnLeeQuota {
		t.Fatalf("lee after the owner's edits: %+v %v", sub.Protection, err)
	}
}

// whoami is the status a proxy's whoami endpoint gives the client's
// certificate ("ok", a reason code, or "error: ..." without an answer).
func whoami(c *http.Client, proxyURL string) string {
	resp, err := c.Get(proxyURL + proxy.WhoamiPath)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return fmt.Sprintf("error: HTTP %d: %v", resp.StatusCode, err)
	}
	return ans.Status
}

// waitWhoami polls until the proxy answers want for the client.
func waitWhoami(t *testing.T, what string, c *http.Client, proxyURL, want string, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		got := whoami(c, proxyURL)
		if got == want {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%s: whoami on %s says %q after %v, want %q", what, proxyURL, got, timeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leeDevice issues a device of lee and waits until every running proxy
// lets it in.
func (m *multiNode) leeDevice(t *testing.T) (*http.Client, string) {
	t.Helper()
	c, id := faultDevice(t, context.Background(), m.a.ca, m.shop.ID, m.lee.ID, m.roots)
	for _, p := range m.prox {
		waitWhoami(t, "new device", c, p.url, "ok", 10*time.Second)
	}
	return c, id
}

// mnCount is def, or the positive number in the environment variable env.
func mnCount(t *testing.T, env string, def int) (int, bool) {
	t.Helper()
	s := os.Getenv(env)
	if s == "" {
		return def, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", env, s)
	}
	return n, true
}

// mnBudget is how long the short form measures revocations; the quota
// race gets twice as long.
const mnBudget = 10 * time.Second

func (m *multiNode) revocationReachesEveryProxy(t *testing.T) {
	// Every CA node and database proxy hears of changes by notification:
	// node B learns of node A's revocations at once, not at its next CRL
	// tick (up to 250 ms later), and wakes its edge proxy's feed.
	want := len(m.cas) + mnDBProxies
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		err := m.pg.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE query = $1`, "LISTEN "+postgres.PolicyChannel).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions LISTEN %s, want %d (every CA node and database proxy)", n, postgres.PolicyChannel, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n, fixed := mnCount(t, "DEVICEGATE_MULTINODE_REVOCATIONS", 1000)
	owners := []*http.Client{m.ownerOn(t, 0), m.ownerOn(t, 1)}
	var lat []time.Duration
	var edgeLat [2][]time.Duration // by the node revoking
	began := time.Now()
	for i := 0; i < n && (fixed || i < 10 || time.Since(began) < mnBudget); i++ {
		dev, id := m.leeDevice(t)
		node := i % 2
		start := time.Now()
		m.ownerRevoke(t, owners[node], node, m.lee.ID, id)
		var wg sync.WaitGroup
		last := make([]time.Duration, len(m.prox))
		errs := make([]string, len(m.prox))
		for j, p := range m.prox {
			wg.Go(func() {
				for {
					got := whoami(dev, p.url)
					if got != "ok" {
						last[j] = time.Since(start)
						if got != "device_not_active" {
							errs[j] = got
						}
						return
					}
					if time.Since(start) > 10*time.Second {
						errs[j] = "still ok after 10 s"
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		for j, e := range errs {
			if e != "" {
				t.Fatalf("revocation %d on node %c: proxy %d answers %q, want device_not_active", i+1, 'A'+node, j+1, e)
			}
		}
		lat = append(lat, slices.Max(last[:mnDBProxies]))
		edgeLat[node] = append(edgeLat[node], last[mnDBProxies])
		dev.CloseIdleConnections()
	}
	t.Logf("%d revocations (owner console of node A and B in turn) reached all %d database proxies: %s (goal p99 < 200 ms)", len(lat), mnDBProxies, percentiles(lat))
	t.Logf("revocations on node A reached the edge proxy (fed by node B): %s", percentiles(edgeLat[0]))
	t.Logf("revocations on node B reached the edge proxy (fed by node B): %s", percentiles(edgeLat[1]))
}

// percentiles describes the p50, p99 and maximum of ds (sorted in place).
func percentiles(ds []time.Duration) string {
	slices.Sort(ds)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", r(ds[len(ds)/2]), r(ds[min(len(ds)-1, len(ds)*99/100)]), r(ds[len(ds)-1]))
}

func (m *multiNode) quotaRace(t *testing.T) {
	rounds, fixed := mnCount(t, "DEVICEGATE_MULTINODE_ROUNDS", 1000)
	ctx := context.Background()
	for _, c := range m.cas { // connections open before the first round
		for range mnRacers {
			if resp, err := c.client.Get(c.caURL + "/healthz"); err == nil {
				resp.Body.Close()
			}
		}
	}
	seen := map[string]bool{} // serials
	began := time.Now()
	done := 0
	for round := 1; round <= rounds && (fixed || round <= 5 || time.Since(began) < 2*mnBudget); round++ {
		var attempts []*enrollAttempt
		for range len(m.cas) * mnRacers {
			code, _, err := m.a.ca.CreateTicket(ctx, m.shop.ID, m.kim.ID, cliActor())
			if err != nil {
				t.Fatal(err)
			}
			attempts = append(attempts, newAttempt(t, code))
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, at := range attempts {
			c := m.cas[i%len(m.cas)]
			wg.Go(func() {
				<-start
				postEnroll(c.client, c.caURL, at)
			})
		}
		close(start)
		wg.Wait()
		issued := 0
		for i, at := range attempts {
			switch {
			case at.status == http.StatusCreated:
				issued++
				if seen[at.serial] {
					t.Fatalf("round %d: serial %s issued twice", round, at.serial)
				}
				seen[at.serial] = true
			case at.errKey != "quota_exceeded":
				t.Fatalf("round %d: enrollment on node %c: %d %s %v", round, 'A'+i%len(m.cas), at.status, at.errKey, at.netErr)
			}
		}
		devices, err := m.a.store.ListDevices(ctx, m.shop.ID, m.kim.ID)
		if err != nil {
			t.Fatal(err)
		}
		if active := store.CountActive(devices, time.Now()); issued != mnQuota || active != mnQuota {
			t.Fatalf("round %d: %d certificates issued, %d devices active, quota %d", round, issued, active, mnQuota)
		}
		if _, err := m.a.store.RevokeSubAccountDevices(ctx, m.shop.ID, m.kim.ID, store.ReasonCessationOfOperation, cliActor()); err != nil {
			t.Fatal(err)
		}
		done = round
	}
	t.Logf("quota race across 2 CA nodes: exactly %d of %d enrollments issued in each of %d rounds (%v per round)",
		mnQuota, len(m.cas)*mnRacers, done, (time.Since(began) / time.Duration(done)).Round(time.Millisecond))
}

// crlEntries is a CRL's revoked serials (hex) with time and reason,
// fetched from a node and checked against the device CA.
func (m *multiNode) crlEntries(t *testing.T, i int) (map[string]string, *x509.RevocationList) {
	t.Helper()
	resp, err := m.cas[i].client.Get(m.cas[i].caURL + "/crl")
	if err != nil {
		t.Fatal(err)
	}
	der, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(der); block != nil {
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("node %c's CRL: %v", 'A'+i, err)
	}
	if err := crl.CheckSignatureFrom(m.a.ca.Keys().Device); err != nil {
		t.Fatalf("node %c's CRL signature: %v", 'A'+i, err)
	}
	out := map[string]string{}
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.Text(16)] = fmt.Sprintf("%s reason %d", e.RevocationTime.UTC().Format(time.RFC3339), e.ReasonCode)
	}
	return out, crl
}

// ocspAnswer asks node i about serial and returns status, time and reason.
func (m *multiNode) ocspAnswer(t *testing.T, i int, serial string) string {
	t.Helper()
	n, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		t.Fatalf("serial %q", serial)
	}
	device := m.a.ca.Keys().Device
	req, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: n}, device, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.cas[i].client.Post(m.cas[i].caURL+"/ocsp", "application/ocsp-request", strings.NewReader(string(req)))
	if err != nil {
		t.Fatal(err)
	}
	der, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseResponse(der, device)
	if err != nil {
		t.Fatalf("node %c's OCSP answer for %s: %v", 'A'+i, serial, err)
	}
	if r.Status != ocsp.Revoked {
		return fmt.Sprintf("status %d", r.Status)
	}
	return fmt.Sprintf("revoked %s reason %d", r.RevokedAt.UTC().Format(time.RFC3339), r.RevocationReason)
}

func (m *multiNode) crlAndOCSPAgree(t *testing.T) {
	ctx := context.Background()
	// A revocation on node A: node B's OCSP says so at once (it asks the
	// store for a serial its set lacks).
	_, id := m.leeDevice(t)
	d, err := m.a.store.GetDevice(ctx, m.shop.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ocspAnswer(t, 1, d.Serial); got != fmt.Sprintf("status %d", ocsp.Good) {
		t.Fatalf("node B's OCSP for an active device: %s", got)
	}
	m.ownerRevoke(t, m.ownerOn(t, 0), 0, m.lee.ID, id)
	a, b := m.ocspAnswer(t, 0, d.Serial), m.ocspAnswer(t, 1, d.Serial)
	if !strings.HasPrefix(b, "revoked") || a != b {
		t.Fatalf("right after a revocation on node A: OCSP of A %q, of B %q", a, b)
	}

	// Every device ever enrolled: the store's word, both CRLs and both
	// OCSP answers agree (the CRLs within a few of the CA's ticks).
	want := map[string]string{} // revoked serials as a CRL lists them
	var serials []string
	for _, sub := range []store.SubAccount{m.kim, m.lee} {
		devices, err := m.a.store.ListDevices(ctx, m.shop.ID, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devices {
			serials = append(serials, d.Serial)
			if d.Status == store.DeviceRevoked {
				want[d.Serial] = fmt.Sprintf("%s reason %d", d.RevokedAt.UTC().Format(time.RFC3339), d.Reason)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := range m.cas {
		for {
			got, crl := m.crlEntries(t, i)
			diff := mapDiff(want, got)
			if diff == "" {
				t.Logf("node %c's CRL number %v lists all %d revocations", 'A'+i, crl.Number, len(got))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %c's CRL differs from the store 10 s after the last revocation: %s", 'A'+i, diff)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// OCSP: every serial (a sample in the long form), on both nodes.
	step := max(1, len(serials)/200)
	for k := 0; k < len(serials); k += step {
		s := serials[k]
		a, b := m.ocspAnswer(t, 0, s), m.ocspAnswer(t, 1, s)
		wantOCSP := fmt.Sprintf("status %d", ocsp.Good)
		if w, revoked := want[s]; revoked {
			wantOCSP = "revoked " + w
		}
		if a != b || a != wantOCSP {
			t.Fatalf("OCSP for %s: node A %q, node B %q, store %q", s, a, b, wantOCSP)
		}
	}
}

// mapDiff describes how got differs from want ("" when equal).
func mapDiff(want, got map[string]string) string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+k)
		} else if g != w {
			out = append(out, fmt.Sprintf("%s: %s, store %s", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

// proxySeq reads a proxy's applied policy seq from its metrics.
func proxySeq(t *testing.T, p *mnProxy) int64 {
	t.Helper()
	resp, err := http.Get(p.metrics)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "devicegate_proxy_policy_seq "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %q", sc.Text())
			}
			return int64(f)
		}
	}
	t.Fatalf("%s has no devicegate_proxy_policy_seq", p.metrics)
	return 0
}

func (m *multiNode) proxyCatchesUp(t *testing.T) {
	ctx := context.Background()
	last := m.prox[mnDBProxies-1] // the one behind the relay
	owners := []*http.Client{m.ownerOn(t, 0), m.ownerOn(t, 1)}
	// caughtUp waits until the proxy has applied the store's seq of now,
	// refuses every device of gone and lets in; the devices of never it
	// must not let through at any moment.
	caughtUp := func(what string, never, gone []*http.Client, in *http.Client) time.Duration {
		t.Helper()
		want, err := m.a.store.CurrentSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		for {
			for i, c := range never {
				if got := whoami(c, last.url); got == "ok" {
					t.Fatalf("%s: the proxy lets revoked device %d through", what, i+1)
				}
			}
			if seq := proxySeq(t, last); seq >= want {
				break
			}
			if time.Since(began) > 30*time.Second {
				t.Fatalf("%s: the proxy's seq is %d 30 s later, the store's %d", what, proxySeq(t, last), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(began)
		for i, c := range gone {
			waitWhoami(t, fmt.Sprintf("%s: revoked device %d", what, i+1), c, last.url, "device_not_active", 5*time.Second)
		}
		waitWhoami(t, what+": device enrolled meanwhile", in, last.url, "ok", 5*time.Second)
		return took
	}

	// Killed (SIGKILL): revocations on both nodes and an enrollment while
	// it is down; it restarts from its snapshot file.
	d1, id1 := m.leeDevice(t)
	d2, id2 := m.leeDevice(t)
	before := proxySeq(t, last)
	last.proc.kill()
	m.ownerRevoke(t, owners[0], 0, m.lee.ID, id1)
	m.ownerRevoke(t, owners[1], 1, m.lee.ID, id2)
	d3, id3 := faultDevice(t, ctx, m.a.ca, m.shop.ID, m.lee.ID, m.roots)
	restarted := time.Now()
	m.startProxy(t, last)
	// It syncs before it listens: never a moment with the old snapshot.
	took := caughtUp("after a restart", []*http.Client{d1, d2}, []*http.Client{d1, d2}, d3)
	t.Logf("restarted proxy (seq %d before the kill): caught up %v after it was ready (%v after the start)",
		before, took.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))

	// Cut off from PostgreSQL: every connection closed, new ones refused,
	// while a device is revoked and another enrolled; the others refuse
	// the revoked one meanwhile.
	cut := m.relay.cut()
	if cut == 0 {
		t.Fatal("the relay carried no connection of the proxy")
	}
	m.ownerRevoke(t, owners[1], 1, m.lee.ID, id3)
	d4, _ := faultDevice(t, ctx, m.a.ca, m.shop.ID, m.lee.ID, m.roots)
	for _, p := range slices.Concat(m.prox[:mnDBProxies-1], m.prox[mnDBProxies:]) {
		waitWhoami(t, "revoked while the third proxy is cut off", d3, p.url, "device_not_active", 5*time.Second)
	}
	if got := whoami(d3, last.url); got == "device_not_active" {
		t.Fatalf("the cut-off proxy already refuses the device revoked meanwhile: the relay did not cut it off")
	}
	m.relay.restore()
	// Until it has caught up it may still pass d3 from its last policy
	// (within max_staleness, as designed); never d1 or d2.
	took = caughtUp("after the link is back", []*http.Client{d1, d2}, []*http.Client{d1, d2, d3}, d4)
	t.Logf("proxy cut off from PostgreSQL (%d connections closed): caught up %v after the link came back", cut, took.Round(time.Millisecond))
	for _, c := range []*http.Client{d1, d2, d3, d4} {
		c.CloseIdleConnections()
	}
}

func (m *multiNode) portalLogoutEverywhere(t *testing.T) {
	b := m.ownerOn(t, 1)
	if p := send(t, b, "POST", m.cas[1].portalURL+"/logout", url.Values{"csrf": {m.ownerCSRF}}, nil); p.status != http.StatusSeeOther {
		t.Fatalf("logout on node B: %d\n%s", p.status, p.body)
	}
	if p := send(t, m.owner, "GET", m.cas[0].portalURL+"/owner/", nil, nil); p.status == http.StatusOK {
		t.Fatal("the session logged out on node B still opens node A's owner console")
	}
}

// pgRelay forwards TCP connections to PostgreSQL. cut closes every one of
// them and refuses new ones until restore: a node whose DSN points at the
// relay is cut off from the database for real.
type pgRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	off    bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newPGRelay(t *testing.T, dsn string) *pgRelay {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &pgRelay{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	r.wg.Go(r.accept)
	t.Cleanup(func() {
		ln.Close()
		r.cut()
		r.wg.Wait()
	})
	return r
}

func (r *pgRelay) addr() string { return r.ln.Addr().String() }

func (r *pgRelay) accept() {
	for {
		down, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			down.Close()
			continue
		}
		r.mu.Lock()
		if r.off {
			r.mu.Unlock()
			down.Close()
			up.Close()
			continue
		}
		r.conns[down], r.conns[up] = true, true
		r.mu.Unlock()
		r.wg.Go(func() { r.pipe(up, down) })
		r.wg.Go(func() { r.pipe(down, up) })
	}
}

// pipe copies until either side ends, then closes both.
func (r *pgRelay) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

// cut closes every relayed connection and refuses new ones; it returns
// how many client connections it closed.
func (r *pgRelay) cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.off = true
	for c := range r.conns {
		c.Close()
	}
	n := len(r.conns) / 2
	clear(r.conns)
	return n
}

func (r *pgRelay) restore() {
	r.mu.Lock()
	r.off = false
	r.mu.Unlock()
}
