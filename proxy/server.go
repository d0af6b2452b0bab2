package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the gateway over TLS. HTTP/1.1 connections are read by the
// fast path (fastpath.go) for as long as their requests are plain GET or
// HEAD that it forwards; the first request that needs more (a body, an
// upgrade, a refusal page, anything unusual) hands the connection, with
// every byte already read, to net/http for the rest of its life. HTTP/2
// connections go to net/http at once. net/http's server is the reference:
// the fast path only ever does a strict subset of what it would do.
type Server struct {
	gw      *Gateway
	http    *http.Server
	handoff *connQueue

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*fastConn]struct{}
	closing atomic.Bool

	fastServed atomic.Uint64 // requests answered by the fast path
	handedOff  atomic.Uint64 // connections given to net/http mid-way
}

// NewServer serves gw with srv's TLS config, timeouts, ConnState hook and
// error log. srv.Handler is set to gw.
func NewServer(gw *Gateway, srv *http.Server) *Server {
	s := &Server{gw: gw, http: srv, handoff: newConnQueue(), conns: map[*fastConn]struct{}{}}
	srv.Handler = gw
	gw.opts.Metrics.watchServer(s)
	next := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		// A handed-off HTTP/1.1 connection is not a *tls.Conn to net/http,
		// so it would not fill in r.TLS: the gateway takes it from here.
		if rc, ok := c.(*replayConn); ok {
			ctx = context.WithValue(ctx, tlsStateKey{}, rc.state)
		}
		if next != nil {
			ctx = next(ctx, c)
		}
		return ctx
	}
	return s
}

// tlsStateKey carries a handed-off connection's TLS state.
type tlsStateKey struct{}

// Serve accepts TCP connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		// Shutdown came first (it found no listener to close): without
		// this, Accept would wait forever on a listener nobody closes.
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Serve(s.handoff) }()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.gw.opts.Log.Warn("proxy: accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go s.serveConn(c)
	}
}

// serveConn does the TLS handshake, then picks the fast path or net/http.
func (s *Server) serveConn(raw net.Conn) {
	tc := tls.Server(wrapSock(raw), s.http.TLSConfig)
	s.connState(tc, http.StateNew)
	_ = tc.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	if err := tc.Handshake(); err != nil {
		// Plain HTTP to the HTTPS port gets net/http's hint, not silence.
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader[:]) {
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		s.logf("http: TLS handshake error from %s: %v", raw.RemoteAddr(), err)
		tc.Close()
		s.connState(tc, http.StateClosed)
		return
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	switch st.NegotiatedProtocol {
	case "acme-tls/1": // an ACME CA's TLS-ALPN-01 check: nothing to serve
		tc.Close()
		s.connState(tc, http.StateClosed)
		return
	case "h2":
		s.handOff(tc, nil, &st)
		return
	}
	c := &fastConn{srv: s, tc: tc, br: bufio.NewReaderSize(tc, fastReadBuffer), state: &st,
		ip: clientIP(raw.RemoteAddr().String())}
	var leaf *x509.Certificate
	if len(st.PeerCertificates) > 0 {
		leaf = st.PeerCertificates[0]
	}
	c.peer = newPeer(leaf, s.gw.opts.TrustDomain)
	if !s.track(c) {
		tc.Close()
		s.connState(tc, http.StateClosed)
		return
	}
	c.serve()
}

// handOff gives a connection to net/http; pending are bytes the fast path
// read but did not serve.
func (s *Server) handOff(tc *tls.Conn, pending []byte, st *tls.ConnectionState) {
	var c net.Conn = tc
	if st.NegotiatedProtocol != "h2" {
		c = &replayConn{Conn: tc, pending: pending, state: st}
	}
	s.connState(tc, http.StateHijacked) // net/http counts it from here
	if !s.handoff.push(c) {
		tc.Close()
	}
}

func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// logf writes to the server's ErrorLog, or the standard logger as
// net/http does without one.
func (s *Server) logf(format string, args ...any) {
	if s.http.ErrorLog != nil {
		s.http.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func (s *Server) connState(c net.Conn, st http.ConnState) {
	if s.http.ConnState != nil {
		s.http.ConnState(c, st)
	}
}

// handshakeTimeout is net/http's: the shortest of its read timeouts.
func (s *Server) handshakeTimeout() time.Duration {
	d := s.http.ReadHeaderTimeout
	if s.http.ReadTimeout > 0 && (d <= 0 || s.http.ReadTimeout < d) {
		d = s.http.ReadTimeout
	}
	if d <= 0 {
		d = 10 * time.Second
	}
	return d
}

func (s *Server) track(c *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *fastConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, lets requests in progress finish and closes
// idle connections, on both paths, until ctx ends; then it closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			c.closeIfIdle()
		}
		left := len(s.conns)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.tc.Close()
			}
			s.mu.Unlock()
			<-httpErr
			return ctx.Err()
		case <-tick.C:
		}
	}
	return <-httpErr
}

// connQueue is the listener net/http serves: connections handed to it.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// replayConn is a TLS connection whose first bytes were already read by
// the fast path: they are read again, by net/http, before the rest.
type replayConn struct {
	*tls.Conn
	pending []byte
	state   *tls.ConnectionState
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
