package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
)

// newHeaderEnv is the gateway with header binding, where allowed
// high-risk requests are the fast path's to serve.
func newHeaderEnv(t *testing.T) *env {
	keyFile := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(testHMACKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	return newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.Binding = config.Binding{Mode: "header", HMACKeyFile: keyFile}
	})
}

// rawConn is one HTTP/1.1 connection written and read by hand, so a test
// controls exactly which requests share it.
type rawConn struct {
	t  *testing.T
	tc *tls.Conn
	br *bufio.Reader
}

func (e *env) dialRaw(t *testing.T, cert *tls.Certificate) *rawConn {
	tc := &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, tc: conn, br: bufio.NewReader(conn)}
}

func (c *rawConn) send(reqs ...string) {
	c.t.Helper()
	if _, err := io.WriteString(c.tc, strings.Join(reqs, "")); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next response's status, refusal reason and body.
func (c *rawConn) read(method string) (int, string, string) {
	c.t.Helper()
	_ = c.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("X-Devicegate-Reason"), string(b)
}

func TestFastPathOnOneConnection(t *testing.T) {
	e := newHeaderEnv(t)
	cert := e.device("alice", testpki.LeafOptions{})
	c := e.dialRaw(t, &cert)
	get := func(path string, extra ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + strings.Join(extra, "") + "\r\n"
	}
	served := e.srv.fastServed.Load()

	// Pipelined: a signed high-risk page, a spoof attempt, a normal page
	// and a HEAD, all answered in order by the fast path.
	c.send(get("/signed/x"),
		get("/echo", "X-Devicegate-Subaccount: shop:boss\r\nClient-Cert: :AAAA:\r\nX-Forwarded-For: 6.6.6.6\r\n"),
		get("/echo"),
		"HEAD /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if status, _, body := c.read("GET"); status != 200 || !strings.HasPrefix(body, "shop:alice "+e.devices["alice"].ID+" :") {
		t.Fatalf("signed page: %d %q", status, body)
	}
	if status, _, body := c.read("GET"); status != 200 || strings.Contains(body, "shop:boss") || strings.Contains(body, ":AAAA:") ||
		strings.Contains(body, "6.6.6.6") || !strings.Contains(body, `"X-Forwarded-For":["127.0.0.1"]`) {
		t.Fatalf("echo: %d %s", status, body)
	}
	if status, _, _ := c.read("GET"); status != 200 {
		t.Fatalf("normal page: %d", status)
	}
	if status, _, body := c.read("HEAD"); status != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", status, body)
	}
	// (counted right after each response is written)
	for deadline := time.Now().Add(2 * time.Second); e.srv.fastServed.Load()-served < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := e.srv.fastServed.Load() - served; n != 4 {
		t.Fatalf("fast path served %d of 4", n)
	}

	// Revoked while the connection is open: the next request is refused
	// (handed to net/http, which answers the refusal page).
	if _, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, e.devices["alice"].ID, store.ReasonKeyCompromise, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	c.send(get("/signed/x"))
	if status, reason, _ := c.read("GET"); status != 403 || reason != ReasonUnknownDevice.String() {
		t.Fatalf("after revocation: %d %q", status, reason)
	}
	// net/http keeps serving the connection, with the same TLS identity.
	c.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc", get("/echo"))
	if status, _, _ := c.read("POST"); status != 200 {
		t.Fatalf("POST after hand-off: %d", status)
	}
	if status, _, _ := c.read("GET"); status != 200 {
		t.Fatalf("GET after hand-off: %d", status)
	}
	if status, reason, _ := func() (int, string, string) { c.send(get("/signed/x")); return c.read("GET") }(); status != 403 || reason != ReasonUnknownDevice.String() {
		t.Fatalf("net/http after hand-off: %d %q", status, reason)
	}
}

// Requests the fast path leaves to net/http get net/http's answers, on a
// connection that already had fast requests.
func TestFastPathHandsOffWhatItDoesNotServe(t *testing.T) {
	e := newHeaderEnv(t)
	cert := e.device("alice", testpki.LeafOptions{})
	tests := []struct {
		name   string
		req    string
		method string
		status int
	}{
		{"path trick", "GET /signed/%2e%2e/x HTTP/1.1\r\nHost: localhost\r\n\r\n", "GET", 400},
		{"encoded slash", "GET /signed%2fx HTTP/1.1\r\nHost: localhost\r\n\r\n", "GET", 400},
		{"unknown host", "GET /echo HTTP/1.1\r\nHost: evil.example\r\n\r\n", "GET", 421},
		{"two hosts", "GET /echo HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n", "GET", 400},
		{"CL and TE", "GET /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", 200}, // net/http: chunked wins over Content-Length (RFC 9112 6.3)
		{"oversized head", "GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Big: " + strings.Repeat("a", 40<<10) + "\r\n\r\n", "GET", 431},
		{"whoami", "GET /.well-known/devicegate/whoami HTTP/1.1\r\nHost: localhost\r\n\r\n", "GET", 200},
		{"HTTP/1.0", "GET /echo HTTP/1.0\r\nHost: localhost\r\n\r\n", "GET", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dialRaw(t, &cert)
			c.send("GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
			if status, _, _ := c.read("GET"); status != 200 {
				t.Fatalf("first request: %d", status)
			}
			handed := e.srv.handedOff.Load()
			c.send(tc.req)
			if status, _, _ := c.read(tc.method); status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if e.srv.handedOff.Load() != handed+1 {
				t.Fatal("not handed to net/http")
			}
		})
	}
}

// Shutdown closes idle fast-path connections and lets a request in
// progress finish.
func TestShutdownDrainsFastConnections(t *testing.T) {
	e := newHeaderEnv(t)
	cert := e.device("alice", testpki.LeafOptions{})
	idle := e.dialRaw(t, &cert)
	idle.send("GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if status, _, _ := idle.read("GET"); status != 200 {
		t.Fatalf("idle conn: %d", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with only an idle connection", d)
	}
	_ = idle.tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.br.ReadByte(); err == nil {
		t.Fatal("idle connection still open after shutdown")
	}
	if _, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost"}); err == nil {
		t.Fatal("new connection accepted after shutdown")
	}
}

// "Connection: close" is answered by the fast path, says so, and ends the
// connection after the response (pipelined bytes after it are not served).
func TestFastPathConnectionClose(t *testing.T) {
	e := newHeaderEnv(t)
	cert := e.device("alice", testpki.LeafOptions{})
	c := e.dialRaw(t, &cert)
	served := e.srv.fastServed.Load()
	c.send("GET /signed/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
	_ = c.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !resp.Close || !strings.HasPrefix(string(body), "shop:alice ") {
		t.Fatalf("%d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after Connection: close")
	}
	if e.srv.fastServed.Load() != served+1 {
		t.Fatal("not served by the fast path")
	}
}

// A failed handshake is logged and closed, also by a Server without an
// ErrorLog (which would crash on a nil logger otherwise).
func TestHandshakeFailureWithoutErrorLog(t *testing.T) {
	e := newHeaderEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{e.pki.ServerCert(t, "localhost")}}
	srv := NewServer(e.gw, &http.Server{TLSConfig: tc})
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n") // not TLS
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(answer), "400 Bad Request") {
		t.Fatalf("plain HTTP to the TLS port: %q %v", answer, err)
	}
	// Still serving.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("after a failed handshake: %v", err)
	}
	conn.Close()
}

// The per-connection signature cache never reuses a signature for another
// request: pipelined requests for different paths and methods all verify.
func TestFastPathSignaturesPerRequest(t *testing.T) {
	e := newHeaderEnv(t)
	cert := e.device("alice", testpki.LeafOptions{})
	c := e.dialRaw(t, &cert)
	reqs := []struct{ method, path string }{{"GET", "/signed/a"}, {"GET", "/signed/a"}, {"GET", "/signed/b"}, {"HEAD", "/signed/b"}, {"GET", "/signed/a?x=1"}}
	var all []string
	for _, r := range reqs {
		all = append(all, r.method+" "+r.path+" HTTP/1.1\r\nHost: localhost\r\n\r\n")
	}
	c.send(all...)
	for _, r := range reqs {
		if status, _, body := c.read(r.method); status != 200 || (r.method == "GET" && !strings.HasPrefix(body, "shop:alice ")) {
			t.Fatalf("%s %s: %d %q", r.method, r.path, status, body)
		}
	}
}
