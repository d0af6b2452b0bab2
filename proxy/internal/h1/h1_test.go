package h1

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
		want Status
	}{
		{"plain GET", "GET /orders/sold?x=1 HTTP/1.1\r\n" + ok, Complete},
		{"HEAD", "HEAD / HTTP/1.1\r\n" + ok, Complete},
		{"keep-alive", "GET / HTTP/1.1\r\nConnection: keep-alive\r\n" + ok, Complete},
		{"host with port", "GET / HTTP/1.1\r\nHost: shop.example:8443\r\n\r\n", Complete},
		{"not yet complete", "GET / HTTP/1.1\r\nHost: shop", Incomplete},
		{"POST", "POST / HTTP/1.1\r\n" + ok, HandOff},
		{"lower-case method", "get / HTTP/1.1\r\n" + ok, HandOff},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + ok, HandOff},
		{"absolute form", "GET http://evil/ HTTP/1.1\r\n" + ok, HandOff},
		{"asterisk", "GET * HTTP/1.1\r\n" + ok, HandOff},
		{"two spaces", "GET  / HTTP/1.1\r\n" + ok, HandOff},
		{"fragment", "GET /a#b HTTP/1.1\r\n" + ok, HandOff},
		{"non-ASCII target", "GET /\xff HTTP/1.1\r\n" + ok, HandOff},
		{"Content-Length", "GET / HTTP/1.1\r\nContent-Length: 0\r\n" + ok, HandOff},
		{"Transfer-Encoding", "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + ok, HandOff},
		{"CL and TE", "GET / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n" + ok, HandOff},
		{"upgrade", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n" + ok, HandOff},
		{"expect", "GET / HTTP/1.1\r\nExpect: 100-continue\r\n" + ok, HandOff},
		{"connection close", "GET / HTTP/1.1\r\nConnection: close\r\n" + ok, Complete},
		{"empty connection", "GET / HTTP/1.1\r\nConnection: \r\n" + ok, HandOff},
		{"connection names a header", "GET / HTTP/1.1\r\nConnection: X-Private\r\n" + ok, HandOff},
		{"no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", HandOff},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\n" + ok, HandOff},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HandOff},
		{"obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n" + ok, HandOff},
		{"space before colon", "GET / HTTP/1.1\r\nX-A : 1\r\n" + ok, HandOff},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", HandOff},
		{"bare CR in value", "GET / HTTP/1.1\r\nX-A: 1\r2\r\n" + ok, HandOff},
		{"NUL in value", "GET / HTTP/1.1\r\nX-A: 1\x002\r\n" + ok, HandOff},
		{"empty name", "GET / HTTP/1.1\r\n: x\r\n" + ok, HandOff},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\n" + ok, HandOff},
		{"too many headers", "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", MaxFields) + ok, HandOff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Head
			if got := ParseHead([]byte(tc.head), &h); got != tc.want {
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
		var h Head
		if ParseHead(b, &h) != Complete {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:h.Size])))
		if err != nil {
			t.Fatalf("fast path accepted what net/http refuses (%v): %q", err, b[:h.Size])
		}
		if r.Method != string(h.Method) || r.RequestURI != string(h.Target) || r.Host != string(h.Host) {
			t.Fatalf("read differently: %q %q %q vs %q %q %q", r.Method, r.RequestURI, r.Host, h.Method, h.Target, h.Host)
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.Close != h.Close {
			t.Fatalf("framing differs: %d %v %v", r.ContentLength, r.TransferEncoding, r.Close)
		}
		forwarded := http.Header{}
		for i := range h.NFields {
			if fl := h.Fields[i]; fl.Kind == Forward {
				forwarded.Add(string(fl.Name), string(fl.Value))
			}
		}
		for k, vv := range forwarded {
			if strings.Join(r.Header[k], "\n") != strings.Join(vv, "\n") {
				t.Fatalf("header %s: net/http %q, fast path %q", k, r.Header[k], vv)
			}
		}
	})
}

func TestParseResponseHead(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		isHead bool
		want   Status
		length int64
		chunk  bool
		close  bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", false, Complete, 5, false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, Complete, -1, true, false},
		{"close", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, Complete, 0, false, true},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, Complete, -1, false, false},
		{"HEAD with length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, Complete, 99, false, false},
		{"incomplete", "HTTP/1.1 200 OK\r\nContent-Le", false, Incomplete, 0, false, false},
		{"1xx", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, HandOff, 0, false, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, HandOff, 0, false, false},
		{"ends with the connection", "HTTP/1.1 200 OK\r\n\r\n", false, HandOff, 0, false, false},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false, HandOff, 0, false, false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, HandOff, 0, false, false},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", false, HandOff, 0, false, false},
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, HandOff, 0, false, false},
		{"trailer announced", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n", false, HandOff, 0, false, false},
		{"connection names a header", "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nContent-Length: 0\r\n\r\n", false, HandOff, 0, false, false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", false, HandOff, 0, false, false},
		{"bad status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false, HandOff, 0, false, false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, HandOff, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h ResponseHead
			got := ParseResponseHead([]byte(tc.head), tc.isHead, &h)
			if got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if got == Complete && (h.Length != tc.length || h.Chunked != tc.chunk || h.Close != tc.close) {
				t.Fatalf("length %d chunked %v close %v", h.Length, h.Chunked, h.Close)
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
		var h ResponseHead
		if ParseResponseHead(b, isHead, &h) != Complete {
			return
		}
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b[:h.Size])), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("relayed what net/http refuses (%v): %q", err, b[:h.Size])
		}
		if resp.StatusCode != h.Status || resp.Close != h.Close {
			t.Fatalf("status/close: net/http %d %v, fast path %d %v", resp.StatusCode, resp.Close, h.Status, h.Close)
		}
		chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
		if !h.Bodyless && (chunked != h.Chunked || (!h.Chunked && resp.ContentLength != h.Length)) {
			t.Fatalf("framing: net/http %v %d, fast path %v %d", resp.TransferEncoding, resp.ContentLength, h.Chunked, h.Length)
		}
		passed := http.Header{}
		for i := range h.NFields {
			if fl := h.Fields[i]; fl.Kind == Forward {
				passed.Add(string(fl.Name), string(fl.Value))
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
