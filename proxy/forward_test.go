package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// forwardVia serves every request through a directForwarder to upstream.
func forwardVia(t *testing.T, upstreamAddr string, timeout time.Duration) (*httptest.Server, *directForwarder) {
	t.Helper()
	f := newDirectForwarder(upstreamAddr, upstreamAddr, timeout, newBufferPool())
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canForwardDirect(r) {
			http.Error(w, "not direct", http.StatusTeapot)
			return
		}
		if err := f.forward(w, r, r.URL.EscapedPath()); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				w.WriteHeader(http.StatusGatewayTimeout)
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(func() { front.Close(); f.Close() })
	return front, f
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
		for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "Te"} {
			if r.Header.Get(h) != "" {
				t.Errorf("hop-by-hop %s reached the upstream", h)
			}
		}
		w.Header().Set("Connection", "X-Up-Private")
		w.Header().Set("X-Up-Private", "no")
		w.Header().Set("X-Up-Public", "yes")
		_, _ = io.WriteString(w, r.Method+" "+r.RequestURI+" xff="+r.Header.Get("X-Forwarded-For")+
			" host="+r.Header.Get("X-Forwarded-Host")+" proto="+r.Header.Get("X-Forwarded-Proto")+" keep="+r.Header.Get("X-Keep"))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	front, _ := forwardVia(t, up.Listener.Addr().String(), 5*time.Second)
	for range 3 {
		req, _ := http.NewRequest("GET", front.URL+"/orders/sold?x=1", nil)
		req.Header.Set("Connection", "X-Secret")
		req.Header.Set("X-Secret", "hop")
		req.Header.Set("Proxy-Authorization", "Basic eA==")
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Keep", "end-to-end")
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "GET /orders/sold?x=1 xff=127.0.0.1 host=" + strings.TrimPrefix(front.URL, "http://") + " proto=http keep=end-to-end"
		if string(body) != want {
			t.Fatalf("upstream saw %q\nwant        %q", body, want)
		}
		if resp.Header.Get("X-Up-Private") != "" || resp.Header.Get("X-Up-Public") != "yes" {
			t.Fatalf("response headers %v", resp.Header)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d upstream connections for 3 sequential requests, want 1 (kept alive)", n)
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
	front, _ := forwardVia(t, addr, 5*time.Second)
	for i := range 3 {
		resp, err := front.Client().Get(front.URL + "/p")
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
		t.Run(tc.name, func(t *testing.T) {
			front, _ := forwardVia(t, rawUpstream(t, tc.respond), 300*time.Millisecond)
			resp, err := front.Client().Get(front.URL + "/p")
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
	front, _ := forwardVia(t, up.Listener.Addr().String(), 5*time.Second)
	resp, err := front.Client().Get(front.URL + "/events")
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
}
