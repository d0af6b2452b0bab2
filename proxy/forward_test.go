package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
)

// front is a way into a directForwarder: net/http's handler path, or the
// gateway's own HTTP/1.1 fast path in front of it.
type front struct {
	name   string
	url    string
	client *http.Client
	proto  string // what the upstream sees as X-Forwarded-Proto
}

// fronts returns both ways to upstreamAddr; each test runs through both.
func fronts(t *testing.T, upstreamAddr string, timeout time.Duration) []front {
	t.Helper()
	f := newDirectForwarder(upstreamAddr, upstreamAddr, timeout, newBufferPool())
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canForwardDirect(r) {
			http.Error(w, "not direct", http.StatusTeapot)
			return
		}
		stripClientHeaders(r.Header) // as the gateway does before forwarding
		var added bytes.Buffer
		writeGatewayHeaders(&added, clientIP(r.RemoteAddr), r.Host, r.TLS != nil, nil)
		if err := f.forward(w, r, &outbound{path: r.URL.EscapedPath(), added: added.Bytes()}); err != nil {
			w.WriteHeader(upstreamStatus(err))
		}
	}))
	t.Cleanup(func() { plain.Close(); f.Close() })

	catalog, err := config.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gw, err := NewGateway(Options{TrustDomain: td, Catalog: catalog, Policy: NewPolicy(nil, catalog, log), MaxStaleness: time.Minute, Log: log,
		Upstreams: []config.Upstream{{Name: "up", URL: "http://" + upstreamAddr, Hosts: []string{"localhost"}, Timeout: config.Duration(timeout),
			Binding: config.Binding{Mode: "whoami"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	pki := testpki.New(t)
	_, url := serveGateway(t, gw, &tls.Config{Certificates: []tls.Certificate{pki.ServerCert(t, "localhost")}})
	fast := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.RootPool()}}}
	t.Cleanup(fast.CloseIdleConnections)
	return []front{
		{name: "net/http", url: plain.URL, client: plain.Client(), proto: "http"},
		{name: "fast path", url: url, client: fast, proto: "https"},
	}
}

func TestCanForwardDirect(t *testing.T) {
	tests := []struct {
		name string
		req  func() *http.Request
		want bool
	}{
		{"GET", func() *http.Request { return httptest.NewRequest("GET", "/a?b=c", nil) }, true},
		{"HEAD", func() *http.Request { return httptest.NewRequest("HEAD", "/a", nil) }, true},
		{"POST", func() *http.Request { return httptest.NewRequest("POST", "/a", nil) }, false},
		{"GET with body", func() *http.Request { return httptest.NewRequest("GET", "/a", strings.NewReader("x")) }, false},
		{"upgrade", func() *http.Request {
			r := httptest.NewRequest("GET", "/ws", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}, false},
		{"expect", func() *http.Request {
			r := httptest.NewRequest("GET", "/a", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}, false},
		{"space in query", func() *http.Request {
			r := httptest.NewRequest("GET", "/a", nil)
			r.URL.RawQuery = "a=b c"
			return r
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := canForwardDirect(tc.req()); got != tc.want {
				t.Fatalf("canForwardDirect = %v, want %v", got, tc.want)
			}
		})
	}
}

// Hop-by-hop headers (also those named in Connection) and client-sent
// X-Forwarded-* never reach the upstream; the proxy's own do.
func TestForwardHeadersAndReuse(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Keep-Alive", "Proxy-Authorization", "Te"} {
			if r.Header.Get(h) != "" {
				t.Errorf("hop-by-hop %s reached the upstream", h)
			}
		}
		w.Header().Set("Connection", "X-Up-Private")
		w.Header().Set("X-Up-Private", "no")
		w.Header().Set("X-Up-Public", "yes")
		_, _ = io.WriteString(w, r.Method+" "+r.RequestURI+" xff="+r.Header.Get("X-Forwarded-For")+
			" host="+r.Header.Get("X-Forwarded-Host")+" proto="+r.Header.Get("X-Forwarded-Proto")+" keep="+r.Header.Get("X-Keep")+
			" secret="+r.Header.Get("X-Secret")+" spoofed="+r.Header.Get("Client-Cert")+r.Header.Get("X-Devicegate-Subaccount"))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	for _, fr := range fronts(t, up.Listener.Addr().String(), 5*time.Second) {
		t.Run(fr.name, func(t *testing.T) {
			conns.Store(0)
			// The fast path serves the first kind itself; "Connection:
			// X-Secret" sends the connection to net/http.
			for i, connection := range []string{"", "", "X-Secret", ""} {
				req, _ := http.NewRequest("GET", fr.url+"/orders/sold?x=1", nil)
				if connection != "" {
					req.Header.Set("Connection", connection)
				}
				req.Header.Set("X-Secret", "hop")
				req.Header.Set("Keep-Alive", "timeout=5")
				req.Header.Set("Proxy-Authorization", "Basic eA==")
				req.Header.Set("X-Forwarded-For", "6.6.6.6")
				req.Header.Set("X-Forwarded-Host", "evil.example")
				req.Header.Set("Client-Cert", ":AAAA:")
				req.Header.Set("X-Devicegate-Subaccount", "shop:boss")
				req.Header.Set("X-Keep", "end-to-end")
				resp, err := fr.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := "GET /orders/sold?x=1 xff=127.0.0.1 host=" + req.URL.Host + " proto=" + fr.proto + " keep=end-to-end"
				if connection == "" {
					want += " secret=hop" // end-to-end unless Connection names it
				} else {
					want += " secret="
				}
				want += " spoofed=" // both fronts clean with the one header rule
				if string(body) != want {
					t.Fatalf("request %d: upstream saw %q\nwant        %q", i, body, want)
				}
				if resp.Header.Get("X-Up-Private") != "" || resp.Header.Get("X-Up-Public") != "yes" {
					t.Fatalf("response headers %v", resp.Header)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d upstream connections for 4 sequential requests, want 1 (kept alive)", n)
			}
		})
	}
}

// rawUpstream answers each connection with the given script: one response
// per request read, then it closes the connection.
func rawUpstream(t *testing.T, respond func(n int, c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				respond(int(n.Add(1)), c, br)
			}()
		}
	}()
	return ln.Addr().String()
}

// An upstream that closes a kept-alive connection between requests: the
// next GET is sent again on a fresh connection instead of failing.
func TestForwardRetriesStaleConnection(t *testing.T) {
	addr := rawUpstream(t, func(n int, c net.Conn, _ *bufio.Reader) {
		// Claims keep-alive, then closes right after the response.
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond)
	})
	for _, fr := range fronts(t, addr, 5*time.Second) {
		t.Run(fr.name, func(t *testing.T) {
			for i := range 3 {
				resp, err := fr.client.Get(fr.url + "/p")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
				}
				time.Sleep(50 * time.Millisecond) // the upstream has closed by now
			}
		})
	}
}

func TestForwardUpstreamFailures(t *testing.T) {
	tests := []struct {
		name    string
		respond func(n int, c net.Conn, br *bufio.Reader)
		status  int
		broken  bool // the client's response must break off
	}{
		{"timeout", func(int, net.Conn, *bufio.Reader) { time.Sleep(2 * time.Second) }, http.StatusGatewayTimeout, false},
		{"closed without answer", func(int, net.Conn, *bufio.Reader) {}, http.StatusBadGateway, false},
		{"garbage", func(_ int, c net.Conn, _ *bufio.Reader) { _, _ = io.WriteString(c, "SMTP ready\r\n\r\n") }, http.StatusBadGateway, false},
		{"body cut short", func(_ int, c net.Conn, _ *bufio.Reader) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		}, http.StatusOK, true},
		{"early hints first", func(_ int, c net.Conn, _ *bufio.Reader) {
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}, http.StatusOK, false},
	}
	for _, tc := range tests {
		for _, fr := range fronts(t, rawUpstream(t, tc.respond), 300*time.Millisecond) {
			t.Run(tc.name+"/"+fr.name, func(t *testing.T) {
				resp, err := fr.client.Get(fr.url + "/p")
				if err != nil && tc.broken {
					return // aborted before the head was sent: just as good
				}
				if err != nil {
					t.Fatal(err)
				}
				_, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if (rerr != nil) != tc.broken {
					t.Fatalf("body error %v, want broken=%v", rerr, tc.broken)
				}
			})
		}
	}
}

// A response of unknown length reaches the client as it is produced.
func TestForwardStreamsWithoutBuffering(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "second\n")
	}))
	defer up.Close()
	defer close(release)
	for _, fr := range fronts(t, up.Listener.Addr().String(), 5*time.Second) {
		t.Run(fr.name, func(t *testing.T) {
			resp, err := fr.client.Get(fr.url + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			line := make(chan string, 1)
			go func() {
				s, _ := bufio.NewReader(resp.Body).ReadString('\n')
				line <- s
			}()
			select {
			case s := <-line:
				if s != "first\n" {
					t.Fatalf("first line %q", s)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("the first chunk was held back")
			}
		})
	}
}

// Every way an upstream can frame its body reaches the client whole, on
// both paths (the fast path relays some heads itself and leaves the rest
// to http.ReadResponse).
func TestForwardBodyFramings(t *testing.T) {
	tests := []struct {
		name, response, body string
		status               int
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 200},
		{"chunked with a trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\nX-Sum: 1\r\n\r\n", "hello", 200},
		{"announced trailer", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", "hello", 200},
		{"ends with the connection", "HTTP/1.1 200 OK\r\n\r\nhello", "hello", 200},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 200},
		{"not modified", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", "", 304},
		{"large", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), strings.Repeat("x", 100000), 200},
	}
	for _, tc := range tests {
		addr := rawUpstream(t, func(_ int, c net.Conn, _ *bufio.Reader) { _, _ = io.WriteString(c, tc.response) })
		for _, fr := range fronts(t, addr, 5*time.Second) {
			t.Run(tc.name+"/"+fr.name, func(t *testing.T) {
				resp, err := fr.client.Get(fr.url + "/p")
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tc.status || string(body) != tc.body {
					t.Fatalf("%d %q %v", resp.StatusCode, body, err)
				}
			})
		}
	}
}
