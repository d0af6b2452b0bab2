package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// directForwarder sends GET and HEAD requests without a body to a plain
// HTTP/1.1 upstream over its own keep-alive connections, in the handler's
// goroutine. http.Transport hands every request to two more goroutines per
// connection (writeLoop, readLoop); on a keep-alive load those hand-offs
// cost more CPU than the whole policy check. Requests with a body,
// upgrades and https upstreams keep the ReverseProxy path. Responses are
// parsed by net/http (http.ReadResponse); only the request head is written
// here, from headers the server has already validated.
type directForwarder struct {
	addr    string // upstream host:port
	host    string // Host header sent upstream
	timeout time.Duration
	dialer  net.Dialer
	buffers *bufferPool

	mu      sync.Mutex
	idle    []*upstreamConn // LIFO: the warmest connection first
	maxIdle int
	closed  bool
}

type upstreamConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	reused   bool
	idleAt   time.Time
	deadline lazyDeadline
}

// armDeadline gives the next exchange timeout to complete (set lazily:
// see lazyDeadline).
func (uc *upstreamConn) armDeadline(now time.Time, timeout time.Duration) error {
	if at := uc.deadline.next(now, timeout); !at.IsZero() {
		return uc.SetDeadline(at)
	}
	return nil
}

// maxIdleTime: idle connections older than this are closed rather than
// reused (upstream servers commonly drop them after 60-120 s).
const maxIdleTime = 50 * time.Second

func newDirectForwarder(addr, host string, timeout time.Duration, buffers *bufferPool) *directForwarder {
	return &directForwarder{addr: addr, host: host, timeout: timeout, buffers: buffers, maxIdle: 256,
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
}

// canForwardDirect: GET or HEAD, no body, no upgrade, nothing to negotiate,
// and a query with no bytes that would break the request line.
func canForwardDirect(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.ContentLength != 0 || (r.Body != nil && r.Body != http.NoBody) || len(r.TransferEncoding) > 0 {
		return false
	}
	if r.Header["Upgrade"] != nil || r.Header["Expect"] != nil || r.Header["Trailer"] != nil {
		return false
	}
	for i := 0; i < len(r.URL.RawQuery); i++ {
		if c := r.URL.RawQuery[i]; c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// hopByHop headers belong to one connection and are never forwarded.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// listedInConnection: a header the sender marked hop-by-hop in Connection.
func listedInConnection(connection []string, k string) bool {
	for _, v := range connection {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), k) {
				return true
			}
		}
	}
	return false
}

// forward sends r to the upstream as out says and copies the response to
// w. It returns an error only before the response has started, so the
// caller can still answer with an error page.
func (f *directForwarder) forward(w http.ResponseWriter, r *http.Request, out *outbound) error {
	for attempt := 0; ; attempt++ {
		uc, err := f.get(r.Context())
		if err != nil {
			return err
		}
		// A client that goes away ends the upstream exchange at once.
		stop := context.AfterFunc(r.Context(), func() { _ = uc.SetDeadline(time.Unix(1, 0)) })
		resp, err := f.roundTrip(uc, r, out)
		if err != nil {
			stop()
			uc.Close()
			// A kept-alive connection the upstream closed meanwhile: GET and
			// HEAD are safe to send once more on a fresh one.
			if uc.reused && attempt == 0 && r.Context().Err() == nil && errors.Is(err, errNoResponse) {
				continue
			}
			return err
		}
		f.copyResponse(w, uc, resp, stop)
		return nil
	}
}

// answerAwaiter is a connection whose next write can return once the
// answer is there (sockConn on Linux: no read that finds nothing yet).
type answerAwaiter interface{ awaitAnswer() }

// errNoResponse: the connection failed before a single response byte.
var errNoResponse = errors.New("upstream closed the connection before responding")

// roundTrip writes the request head and reads the response head.
func (f *directForwarder) roundTrip(uc *upstreamConn, r *http.Request, out *outbound) (*http.Response, error) {
	if err := uc.armDeadline(time.Now(), f.timeout); err != nil {
		return nil, err
	}
	f.writeHead(uc.bw, r, out)
	if err := send(uc); err != nil {
		return nil, err
	}
	return readResponse(uc, r)
}

// send flushes the request head and waits for the first response byte; a
// connection that fails before it is errNoResponse (safe to retry).
func send(uc *upstreamConn) error {
	if a, ok := uc.Conn.(answerAwaiter); ok && uc.bw.Buffered() > 0 {
		a.awaitAnswer() // the Flush below writes once, the rest of the head
	}
	if err := uc.bw.Flush(); err != nil {
		return errors.Join(errNoResponse, err)
	}
	if _, err := uc.br.Peek(1); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return err
		}
		return errors.Join(errNoResponse, err)
	}
	return nil
}

// readResponse reads the final response head, skipping 1xx.
func readResponse(uc *upstreamConn, req *http.Request) (*http.Response, error) {
	for informational := 0; ; informational++ {
		resp, err := http.ReadResponse(uc.br, req)
		if err != nil {
			return nil, err
		}
		// 1xx (Early Hints and the like) are not passed on; 101 needs an
		// upgrade request, which never takes this path.
		if resp.StatusCode >= 200 || informational >= 5 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("upstream switched protocols without an upgrade request")
		}
	}
}

// writeHead serializes the request line and headers: the canonical path,
// the client's query, its end-to-end headers (the ones strippedFromClient
// keeps) and the gateway's own lines.
func (f *directForwarder) writeHead(bw *bufio.Writer, r *http.Request, out *outbound) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(out.path)
	if r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(f.host)
	bw.WriteString("\r\n")
	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		if hopByHop(k) || (connection != nil && listedInConnection(connection, k)) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.Write(out.added)
	bw.WriteString("\r\n")
}

// copyResponse passes the response on. Bodies of unknown length and event
// streams are flushed per read, so streaming is never held back. A broken
// upstream or client mid-body aborts the client's response.
func (f *directForwarder) copyResponse(w http.ResponseWriter, uc *upstreamConn, resp *http.Response, stopCancel func() bool) {
	h := w.Header()
	connection := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if hopByHop(k) || (connection != nil && listedInConnection(connection, k)) {
			continue
		}
		h[k] = vv
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)

	streaming := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	flusher, _ := w.(http.Flusher) // a *stallWriter: it flushes what it wrote
	buf := f.buffers.Get()
	defer f.buffers.Put(buf)
	var broken bool
	for reads := 0; ; reads++ {
		n, err := f.readBody(uc, resp.Body, buf, reads)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				broken = true
				break
			}
			if streaming && flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			broken = true
			break
		}
	}
	cancelled := !stopCancel()
	if broken || cancelled || resp.Close || uc.br.Buffered() > 0 {
		uc.Close()
		if broken {
			panic(http.ErrAbortHandler)
		}
		return
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	f.put(uc)
}

// get returns an idle connection or dials a new one.
func (f *directForwarder) get(ctx context.Context) (*upstreamConn, error) {
	now := time.Now()
	f.mu.Lock()
	for n := len(f.idle); n > 0; n = len(f.idle) {
		uc := f.idle[n-1]
		f.idle[n-1] = nil
		f.idle = f.idle[:n-1]
		if now.Sub(uc.idleAt) > maxIdleTime {
			// The LIFO's bottom is the oldest; anything below this one is
			// older still.
			old := f.idle
			f.idle = nil
			f.mu.Unlock()
			uc.Close()
			for _, o := range old {
				o.Close()
			}
			f.mu.Lock()
			continue
		}
		f.mu.Unlock()
		uc.reused = true
		return uc, nil
	}
	f.mu.Unlock()
	c, err := f.dialer.DialContext(ctx, "tcp", f.addr)
	if err != nil {
		return nil, err
	}
	c = wrapSock(c)
	return &upstreamConn{Conn: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, nil
}

// put keeps a connection for the next request (or closes it when full).
func (f *directForwarder) put(uc *upstreamConn) {
	// The deadline is left as it is: an idle connection does no I/O, and
	// the next roundTrip sets a new one first.
	uc.idleAt = time.Now()
	f.mu.Lock()
	if f.closed || len(f.idle) >= f.maxIdle {
		f.mu.Unlock()
		uc.Close()
		return
	}
	f.idle = append(f.idle, uc)
	f.mu.Unlock()
}

// Close drops the idle connections; later requests dial again only until
// the gateway is gone.
func (f *directForwarder) Close() {
	f.mu.Lock()
	idle := f.idle
	f.idle, f.closed = nil, true
	f.mu.Unlock()
	for _, uc := range idle {
		uc.Close()
	}
}

// readBody reads the next piece of an upstream body. Between body reads
// the upstream gets the same time as for its head: a stalled stream is
// cut, a slow but live one is not. (The first read still has the deadline
// set for the exchange.)
func (f *directForwarder) readBody(uc *upstreamConn, body io.Reader, buf []byte, reads int) (int, error) {
	if reads > 0 {
		_ = uc.SetReadDeadline(time.Now().Add(f.timeout))
	}
	return body.Read(buf)
}
