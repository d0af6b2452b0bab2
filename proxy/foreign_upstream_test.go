//lint:file-ignore SA1019 the h2c upstream stands for the many apps that still accept h2c through x/net's h2c handler

package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
)

// These tests put the proxy in front of apps that are not ours and behave
// the way real apps do: one accepts h2c upgrades, one takes the last of
// duplicate cookies, one routes by X-Original-URL.

// rawExchange sends a raw HTTP/1.1 request (as written) on a new TLS
// connection and reads the response head.
func (e *env) rawExchange(t *testing.T, cert *tls.Certificate, request string) *http.Response {
	t.Helper()
	c := e.dialRaw(t, cert)
	c.send(request)
	_ = c.tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	method, _, _ := strings.Cut(request, " ")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// h2cApp is an upstream that accepts h2c upgrades (as golang.org/x/net's
// h2c handler, or any HTTP/2 server with cleartext upgrade on, does) and
// serves its high-risk page to whoever asks.
func h2cApp(t *testing.T, seen *[]string, mu *sync.Mutex) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*seen = append(*seen, r.Proto+" "+r.URL.Path+" upgrade="+r.Header.Get("Upgrade")+" settings="+r.Header.Get("Http2-Settings"))
		mu.Unlock()
		fmt.Fprintf(w, "page %s", r.URL.Path)
	})
	up := httptest.NewServer(h2c.NewHandler(mux, &http2.Server{}))
	t.Cleanup(up.Close)
	return up
}

func TestUpgradeH2CRefused(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	up := h2cApp(t, &seen, &mu)
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) { u.URL = up.URL })
	cases := []struct{ name, request string }{
		{"h2c upgrade", "GET /products HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"},
		{"h2c without Connection listing", "GET /products HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"},
		{"h2c among others", "GET /products HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: foo, h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"},
		{"unconfigured protocol", "GET /products HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: tls/1.2\r\n\r\n"},
		{"CONNECT tunnel", "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"HTTP/2 preface over HTTP/1.1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.rawExchange(t, nil, c.request)
			resp.Body.Close()
			if resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode < 400 {
				t.Fatalf("status %d: the upgrade or tunnel was not refused", resp.StatusCode)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if strings.Contains(s, "h2c") || !strings.HasSuffix(s, "settings=") {
			t.Fatalf("the upstream received an upgrade: %s", s)
		}
	}
}

// TestH2CSettingsHeaderDropped: a plain request with an HTTP2-Settings
// header (no upgrade) passes without it.
func TestH2CSettingsHeaderDropped(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	up := h2cApp(t, &seen, &mu)
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) { u.URL = up.URL })
	for _, method := range []string{"GET", "POST"} {
		resp := e.rawExchange(t, nil, method+" /products HTTP/1.1\r\nHost: localhost\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 0\r\n\r\n")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "page /products" {
			t.Fatalf("%s: %d %q", method, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if !strings.HasSuffix(s, "settings=") {
			t.Fatalf("HTTP2-Settings reached the upstream: %s", s)
		}
	}
}

// TestUpgradeAllowedOnlyAsConfigured: WebSocket passes by default and can
// be switched off; a configured protocol passes; a high-risk path gets the
// full decision before any upgrade.
func TestUpgradeAllowedOnlyAsConfigured(t *testing.T) {
	ws := "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) { u.Upgrades = []string{} })
	resp := e.rawExchange(t, nil, ws)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("websocket with upgrades: []: %d, want 400", resp.StatusCode)
	}
	e = newEnv(t, time.Minute)
	resp = e.rawExchange(t, nil, strings.Replace(ws, "/ws", "/orders/sold", 1))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("websocket on a high-risk path without a certificate: %d, want 403", resp.StatusCode)
	}
}

// lastWinsApp is an app whose session lookup takes the LAST of duplicate
// cookies (as many frameworks do), and whose whoami records what it was
// sent.
type lastWinsApp struct {
	mu       sync.Mutex
	sessions map[string]string
	whoami   []string // the Cookie headers whoami received
}

func (a *lastWinsApp) user(r *http.Request) string {
	user := ""
	for _, c := range r.Cookies() {
		if c.Name == "sid" {
			user = a.sessions[c.Value]
		}
	}
	return user
}

func (a *lastWinsApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := a.user(r)
	if r.URL.Path == "/whoami" {
		a.mu.Lock()
		a.whoami = append(a.whoami, strings.Join(r.Header.Values("Cookie"), " | "))
		a.mu.Unlock()
		if user == "" {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"user": user})
		return
	}
	fmt.Fprintf(w, "orders of %s", user)
}

func TestWhoamiDuplicateSessionCookies(t *testing.T) {
	app := &lastWinsApp{sessions: map[string]string{"tok-alice": "shop:alice", "tok-bob": "shop:bob"}}
	up := httptest.NewServer(app)
	t.Cleanup(up.Close)
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.URL = up.URL
		u.Binding = config.Binding{Mode: "whoami", WhoamiURL: up.URL + "/whoami", SessionCookie: "sid", UserField: "user"}
	})
	bob := e.device("bob", testpki.LeafOptions{})
	request := func(cookieLines ...string) (int, string) {
		var b strings.Builder
		b.WriteString("GET /orders/sold HTTP/1.1\r\nHost: localhost\r\n")
		for _, l := range cookieLines {
			b.WriteString("Cookie: " + l + "\r\n")
		}
		b.WriteString("\r\n")
		resp := e.rawExchange(t, &bob, b.String())
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	// Legitimate: Bob's own session, with other cookies beside it; the
	// app's whoami gets exactly the session cookie.
	if status, body := request("theme=dark; sid=tok-bob; lang=en"); status != http.StatusOK || body != "orders of shop:bob" {
		t.Fatalf("bob's own session: %d %q", status, body)
	}
	app.mu.Lock()
	got := app.whoami[len(app.whoami)-1]
	app.mu.Unlock()
	if got != "sid=tok-bob" {
		t.Fatalf("whoami was sent %q, want exactly the session cookie", got)
	}
	// Attacks: Bob's device with Alice's session behind his own (the
	// cache holds Bob's answer now), in every spelling an app may read.
	attacks := [][]string{
		{"sid=tok-bob; sid=tok-alice"},
		{"sid=tok-bob", "sid=tok-alice"},
		{"sid=tok-bob; sid=\"tok-alice\""},
		{"sid=tok-bob; SID=tok-alice"},
		{"sid=tok-bob; s%69d=tok-alice"},
		{"sid=tok-bob; sid =tok-alice"},
		{"sid=tok-bob; sid=tok alice"},
	}
	for _, lines := range attacks {
		if status, body := request(lines...); status != http.StatusForbidden || strings.Contains(body, "shop:alice") {
			t.Errorf("cookies %q: %d %q, want 403", lines, status, body)
		}
	}
}

func TestJWTAmbiguousTokenRefused(t *testing.T) {
	e, sign := newJWTEnv(t, "bo_jwt")
	alice := e.device("alice", testpki.LeafOptions{})
	aliceTok, bobTok := sign("shop:alice"), sign("shop:bob")
	cases := []struct {
		name   string
		lines  []string
		status int
	}{
		{"cookie alone", []string{"Cookie: bo_jwt=" + aliceTok}, http.StatusOK},
		{"two cookies", []string{"Cookie: bo_jwt=" + aliceTok + "; bo_jwt=" + bobTok}, http.StatusForbidden},
		{"cookie and bearer", []string{"Cookie: bo_jwt=" + aliceTok, "Authorization: Bearer " + bobTok}, http.StatusForbidden},
		{"two authorization headers", []string{"Authorization: Bearer " + aliceTok, "Authorization: Bearer " + bobTok}, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := "GET /orders/sold HTTP/1.1\r\nHost: localhost\r\n" + strings.Join(c.lines, "\r\n") + "\r\n\r\n"
			resp := e.rawExchange(t, &alice, req)
			resp.Body.Close()
			// Let through, the demo app answers with its own login redirect
			// (it does not read JWTs): what matters is the gateway's verdict.
			reason := resp.Header.Get("X-Devicegate-Reason")
			if passed := reason == "" && resp.StatusCode != http.StatusForbidden; passed != (c.status == http.StatusOK) {
				t.Fatalf("%d %q, want %d", resp.StatusCode, reason, c.status)
			}
			if c.status == http.StatusForbidden && reason != ReasonAmbiguousSession.String() {
				t.Fatalf("reason %q, want %q", reason, ReasonAmbiguousSession)
			}
		})
	}
}

// newJWTEnv is a gateway whose upstream binds sessions with a JWT in the
// cookie (or a bearer token); sign makes a valid token for a user.
func newJWTEnv(t *testing.T, cookie string) (*env, func(user string) string) {
	appKey := testpki.NewKey(t, testpki.P256)
	keyFile := filepath.Join(t.TempDir(), "app.pub")
	der, _ := x509.MarshalPKIXPublicKey(appKey.Public())
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.Binding = config.Binding{Mode: "jwt", JWTKeyFile: keyFile, JWTCookie: cookie, JWTClaim: "sub"}
	})
	return e, func(user string) string { return signJWT(t, appKey, jose.ES256, user, time.Hour) }
}

// echoed is what the /echo upstream reports it received.
type echoed struct {
	Headers http.Header
	Path    string
	Method  string
	Host    string
}

// TestSteeringHeadersStripped: headers that make apps route, pick a method
// or trust an identity (in any spelling a CGI/WSGI server folds to the same
// variable) never reach the upstream, on every way through the proxy.
func TestSteeringHeadersStripped(t *testing.T) {
	e := newEnv(t, time.Minute)
	steering := []string{
		"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
		"X_Devicegate_Subaccount", "X_Forwarded_For", "X-Forwarded_For", "X_Real_IP", "Client_Cert",
		"X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Host", "X-Forwarded-Server", "x-devicegate-device-id",
		"X-Original-Host", "X-Original-URI", "X-Original-Method",
	}
	alice := e.device("alice", testpki.LeafOptions{})
	ways := []struct {
		name   string
		method string
		body   string
		path   string
		cert   *tls.Certificate
	}{
		{"GET (fast path)", "GET", "", "/echo", nil},
		{"HEAD", "HEAD", "", "/echo", nil},
		{"POST with body", "POST", "a=1", "/echo", nil},
		{"GET with a certificate", "GET", "", "/echo", &alice},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			var b strings.Builder
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost\r\n", w.method, w.path)
			for _, h := range steering {
				fmt.Fprintf(&b, "%s: /orders/sold\r\n", h)
			}
			fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(w.body), w.body)
			resp := e.rawExchange(t, w.cert, b.String())
			defer resp.Body.Close()
			if w.method == "HEAD" {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("HEAD: %d", resp.StatusCode)
				}
				return
			}
			var got echoed
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("%d: %v", resp.StatusCode, err)
			}
			for k, v := range got.Headers {
				if strings.Contains(strings.Join(v, ","), "/orders/sold") {
					t.Errorf("%s reached the upstream: %v", k, v)
				}
			}
			if got.Headers.Get("X-Forwarded-Host") != "localhost" {
				t.Errorf("X-Forwarded-Host: %q", got.Headers.Get("X-Forwarded-Host"))
			}
		})
	}
	// HTTP/2 (net/http only).
	req, _ := http.NewRequest(http.MethodGet, e.url+"/echo", nil)
	for _, h := range steering {
		req.Header[h] = []string{"/orders/sold"}
	}
	resp, err := e.clientProto(nil, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got echoed
	_ = json.NewDecoder(resp.Body).Decode(&got)
	if resp.ProtoMajor != 2 {
		t.Fatalf("not HTTP/2: %s", resp.Proto)
	}
	for k, v := range got.Headers {
		if strings.Contains(strings.Join(v, ","), "/orders/sold") {
			t.Errorf("h2: %s reached the upstream: %v", k, v)
		}
	}
}

// TestHostAndPathEdges: the port of Host is checked, trailing whitespace
// (which IIS strips, as it strips a trailing dot) and control characters
// are refused; the legitimate forms pass with one canonical Host.
func TestHostAndPathEdges(t *testing.T) {
	e := newEnv(t, time.Minute)
	port := e.url[strings.LastIndexByte(e.url, ':')+1:]
	cases := []struct {
		name, target, host string
		status             int
	}{
		{"host with a name as port", "/products", "localhost:evil.com", http.StatusBadRequest},
		{"host with port 0", "/products", "localhost:0", http.StatusBadRequest},
		{"host with port too large", "/products", "localhost:65536", http.StatusBadRequest},
		{"host with two ports", "/products", "localhost:1:2", http.StatusBadRequest},
		{"host with empty port", "/products", "localhost:", http.StatusBadRequest},
		{"host with a sign", "/products", "localhost:+443", http.StatusBadRequest},
		{"trailing %20", "/orders/sold%20", "localhost", http.StatusBadRequest},
		{"trailing %20 in a segment", "/orders%20/sold", "localhost", http.StatusBadRequest},
		{"trailing %09", "/orders/sold%09", "localhost", http.StatusBadRequest},
		{"trailing no-break space", "/orders/sold%C2%A0", "localhost", http.StatusBadRequest},
		{"trailing ideographic space", "/orders/sold%E3%80%80", "localhost", http.StatusBadRequest},
		{"trailing dot", "/orders/sold.", "localhost", http.StatusBadRequest},
		{"trailing dot and space", "/orders/sold.%20", "localhost", http.StatusBadRequest},
		{"ok: plain host", "/echo", "localhost", http.StatusOK},
		{"ok: host with its port", "/echo", "localhost:" + port, http.StatusOK},
		{"ok: upper-case host", "/echo", "LOCALHOST:" + port, http.StatusOK},
		{"ok: inner space", "/echo%20x", "localhost", http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.rawExchange(t, nil, "GET "+c.target+" HTTP/1.1\r\nHost: "+c.host+"\r\n\r\n")
			defer resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("%d, want %d", resp.StatusCode, c.status)
			}
			if c.status == http.StatusOK {
				var got echoed
				_ = json.NewDecoder(resp.Body).Decode(&got)
				if fh := got.Headers.Get("X-Forwarded-Host"); fh != "localhost" && fh != "localhost:"+port {
					t.Fatalf("X-Forwarded-Host %q is not canonical", fh)
				}
			}
		})
	}
}

// TestMalformedChunkedBody: a request body the client framed badly is the
// client's error (400), not the upstream's (502).
func TestMalformedChunkedBody(t *testing.T) {
	e := newEnv(t, time.Minute)
	for _, body := range []string{"zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "5\r\nhel"} {
		req := "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		tc := &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}}
		conn, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), tc)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, req)
		if strings.HasSuffix(body, "hel") {
			conn.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", body, resp.StatusCode)
		}
	}
}
