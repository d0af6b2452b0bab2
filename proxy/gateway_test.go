package proxy

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

const td = "test.devicegate.local"

var actor = store.Actor{Kind: "cli", Name: "test"}

// env is a gateway over a real store, a throwaway device CA, and the demo
// back-office app as upstream (plus /echo, which shows request headers).
type env struct {
	t       testing.TB
	ctx     context.Context
	pki     *testpki.PKI
	st      store.Store
	tenant  store.Tenant
	policy  *Policy
	gw      *Gateway
	srv     *Server
	url     string // https://localhost:PORT
	devices map[string]store.Device
	// bigWrites gets how each response of the upstream's /big ended.
	bigWrites chan error
}

func newEnv(t testing.TB, maxStale time.Duration) *env {
	t.Helper()
	return newEnvWith(t, maxStale, nil)
}

// newEnvWith lets a test change the upstream's configuration.
func newEnvWith(t testing.TB, maxStale time.Duration, change func(*config.Upstream), tune ...func(*Options)) *env {
	t.Helper()
	return newEnvOn(t, sqlitetest.Open(t), maxStale, change, tune...)
}

// newEnvOn is newEnvWith over a given store (closed with the test).
func newEnvOn(t testing.TB, st store.Store, maxStale time.Duration, change func(*config.Upstream), tune ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { st.Close() })
	var err error
	e := &env{t: t, ctx: ctx, pki: testpki.New(t), st: st, devices: map[string]store.Device{}, bigWrites: make(chan error, 8)}
	e.tenant = storetest.Tenant(t, st, "shop")
	var users []backoffice.User
	for _, name := range []string{"alice", "bob"} {
		storetest.Protected(t, st, e.tenant, name, 2)
		h, _ := secrets.HashPassword(name + "-password")
		users = append(users, backoffice.User{Name: "shop:" + name, PasswordHash: h})
	}
	app := backoffice.New(users)
	upstreamMux := http.NewServeMux()
	upstreamMux.Handle("/", app)
	upstreamMux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "path": r.URL.EscapedPath()})
	})
	upstreamMux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		// 64 MiB: more than every buffer between here and a client.
		chunk := make([]byte, 32<<10)
		var err error
		for i := 0; i < 2048 && err == nil; i++ {
			_, err = w.Write(chunk)
		}
		select {
		case e.bigWrites <- err:
		default:
		}
	})
	upstreamMux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		// A minimal upgrade: switch protocols, then echo lines.
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		line, err := brw.ReadString('\n')
		if err == nil {
			brw.WriteString("echo: " + line)
			brw.Flush()
		}
	})
	upstreamMux.HandleFunc("/signed/", func(w http.ResponseWriter, r *http.Request) {
		sub, dev, err := VerifyIdentity(testHMACKey, r, time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s %s", sub, dev, r.Header.Get("Client-Cert")[:10])
	})
	up := httptest.NewServer(upstreamMux)
	t.Cleanup(up.Close)

	catalog, err := config.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	e.policy = NewPolicy(st, catalog, log)
	uc := config.Upstream{
		Name: "backoffice", URL: up.URL, Hosts: []string{"localhost"},
		Binding: config.Binding{Mode: "whoami", WhoamiURL: up.URL + "/whoami", SessionCookie: backoffice.SessionCookie, UserField: "user"},
		Permissions: []config.PathPermission{
			{Path: "/orders/sold", Point: "orders.sold"}, {Path: "/orders/export.csv", Point: "orders.export"},
			{Path: "/shipping", Point: "shipping"}, {Path: "/members", Point: "members"}, {Path: "/products", Point: "products"},
			{Path: "/signed", Point: "orders.sold"},
		},
	}
	if change != nil {
		change(&uc)
	}
	opts := Options{
		TrustDomain: td, Catalog: catalog, Policy: e.policy, MaxStaleness: maxStale, EnrollURL: "https://localhost:8444/", Log: log,
		Upstreams: []config.Upstream{uc},
	}
	for _, f := range tune {
		f(&opts)
	}
	e.gw, err = NewGateway(opts)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{e.pki.ServerCert(t, "localhost", "127.0.0.1")}, NextProtos: []string{"h2", "http/1.1"}}
	ConfigureTLS(tc, poolOf(e.pki.Intermediate), nil)
	e.srv, e.url = serveGateway(t, e.gw, tc)
	e.sync()
	return e
}

// serveGateway runs gw as the product does: the fast path first, net/http
// for the rest, with the product's timeouts and header limit.
func serveGateway(t testing.TB, gw *Gateway, tc *tls.Config) (*Server, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(gw, &http.Server{TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10, ErrorLog: log.New(io.Discard, "", 0)})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return srv, "https://localhost:" + port
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

func (e *env) sync() {
	e.t.Helper()
	if err := e.policy.Sync(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// device enrolls a device for "shop:name" and returns its TLS certificate.
func (e *env) device(name string, o testpki.LeafOptions) tls.Certificate {
	e.t.Helper()
	s, err := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, name)
	if err != nil {
		e.t.Fatal(err)
	}
	id := store.NewID()
	o.URIs = []string{identity.Principal{TrustDomain: td, TenantID: e.tenant.ID, SubID: s.ID, DeviceID: id}.URI().String()}
	leaf, key := e.pki.Leaf(e.t, o)
	d, _, err := e.st.IssueDevice(e.ctx, store.IssueRequest{TenantID: e.tenant.ID, SubID: s.ID, DeviceID: id, Serial: leaf.SerialNumber.Text(16),
		Fingerprint: "00", IssuedAt: leaf.NotBefore, ExpiresAt: leaf.NotAfter, Now: time.Now()}, actor)
	if err != nil {
		e.t.Fatal(err)
	}
	e.devices[name] = d
	e.sync()
	return e.pki.TLSCertificate(leaf, key)
}

// client is a browser: its own cookie jar and, optionally, a certificate.
func (e *env) client(cert *tls.Certificate) *http.Client {
	return e.clientProto(cert, false)
}

// clientProto is a client speaking HTTP/2 (h2) or HTTP/1.1.
func (e *env) clientProto(cert *tls.Certificate, h2 bool) *http.Client {
	tc := &tls.Config{RootCAs: e.pki.RootPool()}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2}}
}

func (e *env) login(c *http.Client, name string) {
	e.t.Helper()
	resp, err := c.PostForm(e.url+"/login", url.Values{"username": {"shop:" + name}, "password": {name + "-password"}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // redirected to / after login
		e.t.Fatalf("login as %s: %d", name, resp.StatusCode)
	}
}

// get returns status, the refusal reason header and the body.
func get(t *testing.T, c *http.Client, u string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Devicegate-Reason"), string(b)
}

func TestHighRiskDecisions(t *testing.T) {
	e := newEnv(t, time.Minute)
	aliceCert := e.device("alice", testpki.LeafOptions{})
	bobCert := e.device("bob", testpki.LeafOptions{})

	alice := e.client(&aliceCert)
	e.login(alice, "alice")
	noCert := e.client(nil)
	e.login(noCert, "alice")
	mixed := e.client(&aliceCert) // alice's certificate, bob's app session
	e.login(mixed, "bob")
	anonymous := e.client(&bobCert) // a certificate, but not logged in

	tests := []struct {
		name   string
		c      *http.Client
		path   string
		status int
		reason string
	}{
		{"normal page without certificate", noCert, "/products", 200, ""},
		{"high-risk page without certificate", noCert, "/orders/sold", 403, ReasonNoCertificate.String()},
		{"same sub-account: certificate and session", alice, "/orders/sold", 200, ""},
		{"same sub-account: shipping", alice, "/shipping", 200, ""},
		{"same sub-account: export", alice, "/orders/export.csv", 403, ReasonNoPermission.String()},
		{"permission not granted", alice, "/members", 403, ReasonNoPermission.String()},
		{"certificate of A, session of B", mixed, "/orders/sold", 403, ReasonSessionMismatch.String()},
		{"certificate, no session", anonymous, "/orders/sold", 403, ReasonNotLoggedIn.String()},
		{"sub-path of a high-risk prefix", noCert, "/orders/sold/123", 403, ReasonNoCertificate.String()},
		{"case variant is another path", noCert, "/Orders/Sold", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, reason, body := get(t, tc.c, e.url+tc.path)
			if status != tc.status || reason != tc.reason {
				t.Fatalf("%s: %d %q, want %d %q", tc.path, status, reason, tc.status, tc.reason)
			}
			if status == 403 && (!strings.Contains(body, "Sorry, cannot pass verification") || !strings.Contains(body, "https://localhost:8444/")) {
				t.Fatalf("refusal page: %q", body)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/orders/sold", nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
	resp, err := noCert.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "抱歉，无法通过验证") {
		t.Fatal("no zh refusal page")
	}
}

func TestRevocationCutsOpenConnection(t *testing.T) {
	e := newEnv(t, time.Minute)
	cert := e.device("alice", testpki.LeafOptions{})
	c := e.client(&cert)
	e.login(c, "alice")
	if status, _, _ := get(t, c, e.url+"/orders/sold"); status != 200 {
		t.Fatalf("before revoke: %d", status)
	}
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, e.devices["alice"].ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	resp, reused := getOnConn(t, c, e.url+"/orders/sold")
	if !reused || resp.StatusCode != 403 || resp.Header.Get("X-Devicegate-Reason") != ReasonUnknownDevice.String() {
		t.Fatalf("after revoke on the same connection (reused=%v): %d %q", reused, resp.StatusCode, resp.Header.Get("X-Devicegate-Reason"))
	}
	// Normal pages still work for the revoked device.
	if status, _, _ := get(t, c, e.url+"/products"); status != 200 {
		t.Fatalf("normal page after revoke: %d", status)
	}
}

func TestHandshakeRefusesInvalidCertificates(t *testing.T) {
	e := newEnv(t, time.Minute)
	other := testpki.New(t)
	foreignLeaf, foreignKey := other.Leaf(t, testpki.LeafOptions{})
	for name, cert := range map[string]tls.Certificate{
		"other CA":      other.TLSCertificate(foreignLeaf, foreignKey),
		"expired":       e.device("alice", testpki.LeafOptions{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour + time.Minute)}),
		"not yet valid": e.device("bob", testpki.LeafOptions{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.client(&cert).Get(e.url + "/products"); err == nil {
				t.Fatal("handshake accepted")
			}
		})
	}
	serverLeaf, serverKey := e.pki.Leaf(t, testpki.LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	serverCert := e.pki.TLSCertificate(serverLeaf, serverKey)
	if _, err := e.client(&serverCert).Get(e.url + "/products"); err == nil {
		t.Fatal("server-EKU certificate accepted as a client certificate")
	}
}

// Both paths strip them: the fast path (HTTP/1.1) and net/http (HTTP/2).
func TestSpoofedHeadersAreStripped(t *testing.T) {
	e := newEnv(t, time.Minute)
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/echo", nil)
		for _, h := range []string{"X-Devicegate-Subaccount", "X-Devicegate-Device-Id", "Client-Cert", "Client-Cert-Chain", "X-Forwarded-Client-Cert", "Forwarded"} {
			req.Header.Set(h, "shop:alice")
		}
		for _, h := range []string{"X-Real-Ip", "True-Client-Ip", "X-Client-Ip"} {
			req.Header.Set(h, "6.6.6.6")
		}
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Proto", "http")
		resp, err := e.clientProto(nil, h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("want h2=%v, got %s", h2, resp.Proto)
		}
		var echo struct {
			Headers http.Header
		}
		json.NewDecoder(resp.Body).Decode(&echo)
		resp.Body.Close()
		for k, v := range echo.Headers {
			if strings.Contains(strings.Join(v, ","), "shop:alice") || strings.Contains(strings.Join(v, ","), "6.6.6.6") {
				t.Fatalf("h2=%v: spoofed header reached the upstream: %s: %v", h2, k, v)
			}
		}
		if echo.Headers.Get("X-Forwarded-Proto") != "https" || echo.Headers.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Fatalf("h2=%v: X-Forwarded-*: %v", h2, echo.Headers)
		}
	}
}

// rawRequest sends a request line as written (Go's client would clean it).
func (e *env) rawRequest(t *testing.T, requestLine, host string) int {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", requestLine, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPathAndHostTricks(t *testing.T) {
	e := newEnv(t, time.Minute)
	for _, p := range []string{"/orders%2fsold", "/./orders/sold", "/x/../orders/sold", "/%2e%2e/orders/sold", "/orders%5csold",
		"/orders/sold%00", "/orders/%252e%252e/sold", "/orders/sold;x=1", "/orders/sold.", "/orders/sold%2e"} {
		if status := e.rawRequest(t, "GET "+p, "localhost"); status != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", p, status)
		}
	}
	if status := e.rawRequest(t, "GET //orders//sold", "localhost"); status != http.StatusForbidden {
		t.Errorf("GET //orders//sold: %d, want 403 (collapsed to the high-risk path)", status)
	}
	for _, host := range []string{"evil.example", "localhost.evil.example"} {
		if status := e.rawRequest(t, "GET /products", host); status != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", host, status)
		}
	}
}

func TestStalePolicyFailsClosed(t *testing.T) {
	e := newEnv(t, 50*time.Millisecond)
	cert := e.device("alice", testpki.LeafOptions{})
	c := e.client(&cert)
	e.login(c, "alice")
	time.Sleep(100 * time.Millisecond) // no sync since: stale
	if status, reason, _ := get(t, c, e.url+"/orders/sold"); status != 503 || reason != ReasonPolicyStale.String() {
		t.Fatalf("stale policy: %d %q", status, reason)
	}
	if status, _, _ := get(t, c, e.url+"/products"); status != 200 {
		t.Fatalf("normal page with stale policy: %d", status)
	}
	e.sync()
	if status, _, _ := get(t, c, e.url+"/orders/sold"); status != 200 {
		t.Fatalf("after sync: %d", status)
	}
}

func TestWhoamiEndpoint(t *testing.T) {
	e := newEnv(t, time.Minute)
	cert := e.device("alice", testpki.LeafOptions{})
	ask := func(c *http.Client) whoamiAnswer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.url+WhoamiPath, nil)
		req.Header.Set("Origin", "https://localhost:8444")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://localhost:8444" {
			t.Fatalf("CORS for the portal: %v", resp.Header)
		}
		var a whoamiAnswer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := ask(e.client(nil)); a.Certificate || a.Status != ReasonNoCertificate.String() {
		t.Fatalf("without certificate: %+v", a)
	}
	c := e.client(&cert)
	if a := ask(c); a.Status != "ok" || a.SubAccount != "shop:alice" || a.Installed != 1 || a.Limit != 2 || a.DeviceID != e.devices["alice"].ID {
		t.Fatalf("with alice's certificate: %+v", a)
	}
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, e.devices["alice"].ID, store.ReasonUnspecified, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if a := ask(c); a.Status != ReasonUnknownDevice.String() || a.SubAccount != "" {
		t.Fatalf("after revoke: %+v", a)
	}
}

// TestSmugglingCLTE: a request with both Content-Length and
// Transfer-Encoding cannot carry a second request past the gateway.
func TestSmugglingCLTE(t *testing.T) {
	e := newEnv(t, time.Minute)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	smuggled := "GET /orders/sold HTTP/1.1\r\nHost: localhost\r\n\r\n"
	body := "0\r\n\r\n" + smuggled
	fmt.Fprintf(conn, "POST /products HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(body), body)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(conn)
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break // the connection was closed: nothing more was served
		}
		resp.Body.Close()
		// Whatever the parser made of the body, a second request is a
		// request of its own and goes through the gateway's checks.
		if i == 1 && resp.StatusCode != http.StatusForbidden {
			t.Fatalf("second request on the connection: %d, want the gateway's 403 (checked like any request)", resp.StatusCode)
		}
	}
}

var testHMACKey = []byte("0123456789abcdef0123456789abcdef")

func TestHeaderBinding(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(testHMACKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.Binding = config.Binding{Mode: "header", HMACKeyFile: keyFile}
	})
	cert := e.device("alice", testpki.LeafOptions{})
	// No app session needed: the app verifies the signed identity itself.
	status, _, body := get(t, e.client(&cert), e.url+"/signed/x")
	if status != 200 || !strings.HasPrefix(body, "shop:alice "+e.devices["alice"].ID+" :") {
		t.Fatalf("signed identity: %d %q", status, body)
	}
	if status, reason, _ := get(t, e.client(nil), e.url+"/signed/x"); status != 403 || reason != ReasonNoCertificate.String() {
		t.Fatalf("without certificate: %d %q", status, reason)
	}
	// A forged signature (client-sent headers are stripped anyway) fails.
	req := httptest.NewRequest(http.MethodGet, "/signed/x", nil)
	req.Header.Set(HeaderSubaccount, "shop:alice")
	req.Header.Set(HeaderDeviceID, "d")
	req.Header.Set(HeaderTimestamp, fmt.Sprint(time.Now().Unix()))
	req.Header.Set(HeaderSignature, "AAAA")
	if _, _, err := VerifyIdentity(testHMACKey, req, time.Minute); err == nil {
		t.Fatal("forged identity headers verified")
	}
}

// TestRevocationCutsHTTP2Stream: on one HTTP/2 connection, the stream after
// the revocation is refused.
func TestRevocationCutsHTTP2Stream(t *testing.T) {
	e := newEnv(t, time.Minute)
	cert := e.device("alice", testpki.LeafOptions{})
	c := e.clientProto(&cert, true)
	e.login(c, "alice")
	resp, err := c.Get(e.url + "/orders/sold")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("before revoke: HTTP/%d %d", resp.ProtoMajor, resp.StatusCode)
	}
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, e.devices["alice"].ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	resp, reused := getOnConn(t, c, e.url+"/orders/sold")
	if !reused || resp.ProtoMajor != 2 || resp.StatusCode != 403 {
		t.Fatalf("after revoke on the same h2 connection (reused=%v): HTTP/%d %d", reused, resp.ProtoMajor, resp.StatusCode)
	}
}

// TestWebSocketUpgradePasses: an Upgrade request is tunneled to the app.
func TestWebSocketUpgradePasses(t *testing.T) {
	e := newEnv(t, time.Minute)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	fmt.Fprint(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("tunnel: %q %v", line, err)
	}
}

func TestLoginRequiresCertificateWhenConfigured(t *testing.T) {
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.LoginPath, u.RequireCertForLogin = "/login", true
	})
	cert := e.device("alice", testpki.LeafOptions{})
	form := url.Values{"username": {"shop:alice"}, "password": {"alice-password"}}
	resp, err := e.client(nil).PostForm(e.url+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Devicegate-Reason") != ReasonNoCertificate.String() {
		t.Fatalf("login without certificate: %d", resp.StatusCode)
	}
	e.login(e.client(&cert), "alice") // with the certificate: the app's login works
	if status, _, _ := get(t, e.client(nil), e.url+"/echo"); status != 200 {
		t.Fatalf("other normal pages still open without a certificate: %d", status)
	}
}

func TestKickSyncsAtOnce(t *testing.T) {
	e := newEnv(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.policy.Run(ctx, time.Hour) // the poll alone would never come
	seq := e.policy.Snapshot().Seq
	if _, err := e.st.CreateSubAccount(e.ctx, store.NewSubAccount{TenantID: e.tenant.ID, Name: "carol", Role: "finance", PasswordHash: "x"}, actor); err != nil {
		t.Fatal(err)
	}
	e.policy.Kick()
	deadline := time.Now().Add(2 * time.Second)
	for e.policy.Snapshot().Seq == seq {
		if time.Now().After(deadline) {
			t.Fatal("Kick did not sync")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSnapshotPersistsAcrossRestart(t *testing.T) {
	e := newEnv(t, time.Minute)
	file := filepath.Join(t.TempDir(), "snapshot.json")
	catalog, _ := config.DefaultCatalog()
	first := NewPolicy(e.st, catalog, slog.New(slog.DiscardHandler))
	if err := first.PersistTo(file); err != nil {
		t.Fatal(err)
	}
	cert := e.device("alice", testpki.LeafOptions{}) // syncs e.policy; first must sync itself
	ctx, stop := context.WithCancel(e.ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- first.Run(ctx, time.Hour) }()
	if err := first.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	stop() // the proxy stops: Run writes the last snapshot before it returns
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// A new proxy process, before any sync: it decides from the file.
	restarted := NewPolicy(e.st, catalog, slog.New(slog.DiscardHandler))
	if err := restarted.PersistTo(file); err != nil {
		t.Fatal(err)
	}
	if restarted.Staleness(time.Now()) > time.Minute {
		t.Fatal("loaded snapshot lost its sync time")
	}
	if g, reason := restarted.Snapshot().Check(cert.Leaf, td, "orders.sold", time.Now()); reason != ReasonAllowed || g.SubName != "shop:alice" {
		t.Fatalf("decision from the loaded snapshot: %q", reason)
	}
	if restarted.Snapshot().Seq != first.Snapshot().Seq || restarted.Snapshot().active[g0(first)] != 1 {
		t.Fatal("loaded snapshot differs")
	}
	st, _ := os.Stat(file)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode %v", st.Mode().Perm())
	}
	// A broken file is refused, not used: no policy until the first sync
	// (persist_test.go has the table of damages).
	os.WriteFile(file, []byte("{broken"), 0o600)
	broken := NewPolicy(e.st, catalog, slog.New(slog.DiscardHandler))
	if err := broken.PersistTo(file); err != nil || broken.SnapshotsRefused() != 1 || broken.Staleness(time.Now()) < time.Hour {
		t.Fatalf("a broken snapshot file was accepted: %v", err)
	}
}

// g0 returns the sub id of the only device of a snapshot.
func g0(p *Policy) string {
	for _, d := range p.Snapshot().devices {
		return d.subID
	}
	return ""
}

// signJWT makes a token for user with the given signer and lifetime.
func signJWT(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, user string, ttl time.Duration) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jose.Signed(sig).Claims(jose.Claims{Subject: user, Expiry: jose.NewNumericDate(now.Add(ttl)), IssuedAt: jose.NewNumericDate(now.Add(-time.Minute))}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJWTBinding(t *testing.T) {
	appKey := testpki.NewKey(t, testpki.P256)
	keyFile := filepath.Join(t.TempDir(), "app.pub")
	der, _ := x509.MarshalPKIXPublicKey(appKey.Public())
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.Binding = config.Binding{Mode: "jwt", JWTKeyFile: keyFile, JWTCookie: "app_jwt", JWTClaim: "sub"}
	})
	cert := e.device("alice", testpki.LeafOptions{})
	other := testpki.NewKey(t, testpki.P256)
	tests := []struct {
		name, token, reason string
		status              int
	}{
		{"alice's token", signJWT(t, appKey, jose.ES256, "shop:alice", time.Hour), "", 200},
		{"bob's token", signJWT(t, appKey, jose.ES256, "shop:bob", time.Hour), ReasonSessionMismatch.String(), 403},
		{"expired token", signJWT(t, appKey, jose.ES256, "shop:alice", -time.Hour), ReasonNotLoggedIn.String(), 403},
		{"token of another key", signJWT(t, other, jose.ES256, "shop:alice", time.Hour), ReasonNotLoggedIn.String(), 403},
		{"alg none", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzaG9wOmFsaWNlIn0.", ReasonNotLoggedIn.String(), 403},
		{"HS256 with the public key as secret", hmacJWT(t, keyFile, "shop:alice"), ReasonNotLoggedIn.String(), 403},
		{"no token", "", ReasonNotLoggedIn.String(), 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.url+"/orders/sold", nil)
			if tc.token != "" {
				req.AddCookie(&http.Cookie{Name: "app_jwt", Value: tc.token})
			}
			resp, err := e.client(&cert).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// 200 here is the app's own answer (its login redirect is followed to
			// the login page): what matters is that the gateway let it through.
			if got := resp.Header.Get("X-Devicegate-Reason"); got != tc.reason || (tc.status == 403 && resp.StatusCode != 403) {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, got, tc.status, tc.reason)
			}
		})
	}
}

// hmacJWT is the algorithm-confusion attack: HS256 keyed with the public
// key file's bytes.
func hmacJWT(t *testing.T, keyFile, user string) string {
	t.Helper()
	secret, _ := os.ReadFile(keyFile)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jose.Signed(sig).Claims(jose.Claims{Subject: user, Expiry: jose.NewNumericDate(time.Now().Add(time.Hour))}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// getOnConn makes one GET and reports whether it reused an open connection.
func getOnConn(t *testing.T, c *http.Client, u string) (*http.Response, bool) {
	t.Helper()
	reused := false
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, reused
}
