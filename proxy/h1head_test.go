package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	const ok = "Host: shop.example\r\nAccept: */*\r\n\r\n"
	tests := []struct {
		name string
		head string
		want headStatus
	}{
		{"plain GET", "GET /orders/sold?x=1 HTTP/1.1\r\n" + ok, headComplete},
		{"HEAD", "HEAD / HTTP/1.1\r\n" + ok, headComplete},
		{"keep-alive", "GET / HTTP/1.1\r\nConnection: keep-alive\r\n" + ok, headComplete},
		{"host with port", "GET / HTTP/1.1\r\nHost: shop.example:8443\r\n\r\n", headComplete},
		{"not yet complete", "GET / HTTP/1.1\r\nHost: shop", headIncomplete},
		{"POST", "POST / HTTP/1.1\r\n" + ok, headHandOff},
		{"lower-case method", "get / HTTP/1.1\r\n" + ok, headHandOff},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + ok, headHandOff},
		{"absolute form", "GET http://evil/ HTTP/1.1\r\n" + ok, headHandOff},
		{"asterisk", "GET * HTTP/1.1\r\n" + ok, headHandOff},
		{"two spaces", "GET  / HTTP/1.1\r\n" + ok, headHandOff},
		{"fragment", "GET /a#b HTTP/1.1\r\n" + ok, headHandOff},
		{"non-ASCII target", "GET /\xff HTTP/1.1\r\n" + ok, headHandOff},
		{"Content-Length", "GET / HTTP/1.1\r\nContent-Length: 0\r\n" + ok, headHandOff},
		{"Transfer-Encoding", "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + ok, headHandOff},
		{"CL and TE", "GET / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n" + ok, headHandOff},
		{"upgrade", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n" + ok, headHandOff},
		{"expect", "GET / HTTP/1.1\r\nExpect: 100-continue\r\n" + ok, headHandOff},
		{"connection close", "GET / HTTP/1.1\r\nConnection: close\r\n" + ok, headComplete},
		{"empty connection", "GET / HTTP/1.1\r\nConnection: \r\n" + ok, headHandOff},
		{"connection names a header", "GET / HTTP/1.1\r\nConnection: X-Private\r\n" + ok, headHandOff},
		{"no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", headHandOff},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\n" + ok, headHandOff},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", headHandOff},
		{"obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n" + ok, headHandOff},
		{"space before colon", "GET / HTTP/1.1\r\nX-A : 1\r\n" + ok, headHandOff},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", headHandOff},
		{"bare CR in value", "GET / HTTP/1.1\r\nX-A: 1\r2\r\n" + ok, headHandOff},
		{"NUL in value", "GET / HTTP/1.1\r\nX-A: 1\x002\r\n" + ok, headHandOff},
		{"empty name", "GET / HTTP/1.1\r\n: x\r\n" + ok, headHandOff},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\n" + ok, headHandOff},
		{"too many headers", "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", maxFastHeaders) + ok, headHandOff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h h1Head
			if got := parseHead([]byte(tc.head), &h); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
}

// FuzzParseHead: the fast path never accepts a head net/http would refuse
// or read differently (method, target, host, end of head, and every header
// it forwards), and never panics.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: keep-alive\r\n\r\nGET",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A:\t v \r\n\r\n",
		"GET / HTTP/1.1\r\nhost: x\r\nContent-Length: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h h1Head
		if parseHead(b, &h) != headComplete {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:h.size])))
		if err != nil {
			t.Fatalf("fast path accepted what net/http refuses (%v): %q", err, b[:h.size])
		}
		if r.Method != string(h.method) || r.RequestURI != string(h.target) || r.Host != string(h.host) {
			t.Fatalf("read differently: %q %q %q vs %q %q %q", r.Method, r.RequestURI, r.Host, h.method, h.target, h.host)
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.Close != h.close {
			t.Fatalf("framing differs: %d %v %v", r.ContentLength, r.TransferEncoding, r.Close)
		}
		forwarded := http.Header{}
		for i := range h.nfields {
			if fl := h.fields[i]; fl.kind == fieldForward {
				forwarded.Add(string(fl.name), string(fl.value))
			}
		}
		for k, vv := range forwarded {
			if strings.Join(r.Header[k], "\n") != strings.Join(vv, "\n") {
				t.Fatalf("header %s: net/http %q, fast path %q", k, r.Header[k], vv)
			}
		}
	})
}

// The fast path picks the same upstream as ServeHTTP for every Host form,
// or leaves the request to ServeHTTP; it never routes a Host ServeHTTP
// refuses.
func TestUpstreamForMatchesCanonicalHost(t *testing.T) {
	u := &upstream{}
	g := &Gateway{byHost: map[string]*upstream{"shop.example": u, "127.0.0.1": u, "::1": u}}
	for _, host := range []string{
		"shop.example", "SHOP.Example:8443", "shop.example:", "127.0.0.1:443", "[::1]:443", "[::1]",
		"::1", "other", "shop.example:1:2", "[::1]x", "a]b:80", "[[::1]]:80", "shop.example:evil.com",
		"shop.example:0", "shop.example:65536", "shop.example:080", "shop.example:+80",
	} {
		fast := g.upstreamFor([]byte(host))
		name, _, ok := canonicalHost(host)
		if fast != nil && (!ok || fast != g.byHost[name]) {
			t.Errorf("%q: fast path routes where ServeHTTP does not", host)
		}
		if fast == nil && ok && g.byHost[name] != nil && host == strings.ToLower(host) && host[0] != '[' {
			t.Errorf("%q: fast path misses an upstream ServeHTTP finds", host)
		}
	}
}

func TestParseResponseHead(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		isHead bool
		want   headStatus
		length int64
		chunk  bool
		close  bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", false, headComplete, 5, false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, headComplete, -1, true, false},
		{"close", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, headComplete, 0, false, true},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, headComplete, -1, false, false},
		{"HEAD with length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, headComplete, 99, false, false},
		{"incomplete", "HTTP/1.1 200 OK\r\nContent-Le", false, headIncomplete, 0, false, false},
		{"1xx", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, headHandOff, 0, false, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, headHandOff, 0, false, false},
		{"ends with the connection", "HTTP/1.1 200 OK\r\n\r\n", false, headHandOff, 0, false, false},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false, headHandOff, 0, false, false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, headHandOff, 0, false, false},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", false, headHandOff, 0, false, false},
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, headHandOff, 0, false, false},
		{"trailer announced", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n", false, headHandOff, 0, false, false},
		{"connection names a header", "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nContent-Length: 0\r\n\r\n", false, headHandOff, 0, false, false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", false, headHandOff, 0, false, false},
		{"bad status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false, headHandOff, 0, false, false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, headHandOff, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h h1RespHead
			got := parseResponseHead([]byte(tc.head), tc.isHead, &h)
			if got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if got == headComplete && (h.length != tc.length || h.chunked != tc.chunk || h.close != tc.close) {
				t.Fatalf("length %d chunked %v close %v", h.length, h.chunked, h.close)
			}
		})
	}
}

// FuzzParseResponseHead: what the fast path relays as it came, net/http
// reads the same way: status, framing, connection reuse, and every header
// passed on.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, close\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, isHead bool) {
		var h h1RespHead
		if parseResponseHead(b, isHead, &h) != headComplete {
			return
		}
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b[:h.size])), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("relayed what net/http refuses (%v): %q", err, b[:h.size])
		}
		if resp.StatusCode != h.status || resp.Close != h.close {
			t.Fatalf("status/close: net/http %d %v, fast path %d %v", resp.StatusCode, resp.Close, h.status, h.close)
		}
		chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
		if !h.bodyless && (chunked != h.chunked || (!h.chunked && resp.ContentLength != h.length)) {
			t.Fatalf("framing: net/http %v %d, fast path %v %d", resp.TransferEncoding, resp.ContentLength, h.chunked, h.length)
		}
		passed := http.Header{}
		for i := range h.nfields {
			if fl := h.fields[i]; fl.kind == fieldForward {
				passed.Add(string(fl.name), string(fl.value))
			}
		}
		for k, vv := range passed {
			if k == "Content-Length" {
				continue // net/http keeps it only where it frames a body
			}
			if strings.Join(resp.Header[k], "\n") != strings.Join(vv, "\n") {
				t.Fatalf("header %s: net/http %q, fast path %q", k, resp.Header[k], vv)
			}
		}
	})
}
