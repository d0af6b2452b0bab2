package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/proxy/internal/h1"
)

// The fast path serves the common request of a back office, a GET or HEAD
// without a body, on an HTTP/1.1 keep-alive connection, without net/http's
// per-request machinery (header maps, a background read goroutine per
// request, a cancellable context, response header copies): on the
// gateway's load that machinery cost more CPU than the policy check and
// the forwarding together. The decision is the same function ServeHTTP
// uses; a request the fast path does not forward (anything refused,
// unusual or with a body) is left unread and the connection goes to
// net/http (see Server), which then decides and answers it.

// fastReadBuffer is the per-connection read buffer; a head that does not
// fit goes to net/http (whose limit is MaxHeaderBytes).
const fastReadBuffer = 4096

type fastConn struct {
	srv   *Server
	tc    *tls.Conn
	br    *bufio.Reader
	state *tls.ConnectionState
	peer  *peer
	ip    string
	head  h1.Head

	certLines []byte      // Client-Cert header lines, made on first use
	signed    signedLines // the last signed identity lines
	identity  []byte      // the identity lines of the other bindings

	sessCookies, sessAuth []string // reused by sessionInput

	phase         atomic.Int32 // connIdle, connActive, connClosing
	idleDeadline  lazyDeadline
	writeDeadline lazyDeadline
}

const (
	connIdle int32 = iota
	connActive
	connClosing
)

// fastOutcome is what became of one request.
type fastOutcome uint8

const (
	served    fastOutcome = iota // answered; the connection stays open
	handOff                      // not touched: net/http takes it from here
	closeConn                    // answered or broken: close the connection
)

// serve reads and answers requests until the connection ends or is handed
// to net/http.
func (c *fastConn) serve() {
	handedOff := false
	defer func() {
		c.srv.untrack(c)
		if !handedOff {
			c.tc.Close()
			c.srv.connState(c.tc, http.StateClosed)
		}
	}()
	for {
		if !c.waitForRequest() {
			return
		}
		outcome, ok := c.readHead()
		if ok {
			outcome = c.srv.gw.serveFast(c)
		}
		switch outcome {
		case served:
			c.srv.fastServed.Add(1)
			c.br.Discard(c.head.Size)
			if c.head.Close || c.srv.closing.Load() || !c.phase.CompareAndSwap(connActive, connIdle) {
				return // asked to close, or shutting down
			}
		case handOff:
			c.srv.handedOff.Add(1)
			pending, _ := c.br.Peek(c.br.Buffered())
			_ = c.tc.SetDeadline(time.Time{})
			handedOff = true
			c.srv.handOff(c.tc, append([]byte(nil), pending...), c.state)
			return
		default:
			return
		}
	}
}

// waitForRequest waits up to the idle timeout for the next request's first
// byte (the deadline set lazily: see lazyDeadline).
func (c *fastConn) waitForRequest() bool {
	if c.br.Buffered() == 0 {
		idle := c.srv.http.IdleTimeout
		if idle <= 0 {
			idle = c.srv.http.ReadTimeout
		}
		if idle > 0 {
			if at := c.idleDeadline.next(time.Now(), idle); !at.IsZero() {
				_ = c.tc.SetReadDeadline(at)
			}
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	return c.phase.CompareAndSwap(connIdle, connActive)
}

// readHead reads until a whole request head is buffered; ok is false when
// the outcome is already known (hand off, or the client went away).
func (c *fastConn) readHead() (fastOutcome, bool) {
	for first := true; ; first = false {
		b, _ := c.br.Peek(c.br.Buffered())
		switch h1.ParseHead(b, &c.head) {
		case h1.Complete:
			return served, true
		case h1.HandOff:
			return handOff, false
		}
		if len(b) == c.br.Size() {
			return handOff, false // larger than the fast path reads
		}
		if first {
			// The rest of the head gets net/http's header timeout; the idle
			// deadline is set again before the next request.
			c.idleDeadline = lazyDeadline{}
			_ = c.tc.SetReadDeadline(time.Now().Add(c.srv.handshakeTimeout()))
		}
		if _, err := c.br.Peek(len(b) + 1); err != nil {
			return closeConn, false // gone, or too slow with its head
		}
	}
}

// closeIfIdle ends a connection that waits for its next request (at
// shutdown); one in the middle of a request finishes it first.
func (c *fastConn) closeIfIdle() {
	if c.phase.CompareAndSwap(connIdle, connClosing) {
		_ = c.tc.SetReadDeadline(time.Unix(1, 0))
	}
}

// serveFast routes and decides the request in c.head and forwards it when
// it is allowed; everything else goes to ServeHTTP through net/http.
func (g *Gateway) serveFast(c *fastConn) fastOutcome {
	h := &c.head
	u := g.upstreamFor(h.Host)
	if u == nil || u.direct == nil {
		return handOff
	}
	rawPath, query := h.Target, []byte(nil)
	if i := bytes.IndexByte(rawPath, '?'); i >= 0 {
		rawPath, query = h.Target[:i], h.Target[i:]
	}
	path, err := NormalizePath(string(rawPath), u.cfg.CaseInsensitive)
	if err != nil || path == WhoamiPath {
		return handOff
	}
	if u.cfg.RequireCertForLogin && samePath(path, u.cfg.LoginPath, u.cfg.CaseInsensitive) {
		return handOff
	}
	fr := fastRequest{path: u.forwardedPath(path), query: query}
	now := g.opts.Now()
	point := u.permission(path)
	if point != "" && g.opts.Catalog.IsHighRisk(point) {
		var session sessionInput
		if u.mode != bindingHeader {
			session = c.sessionInput()
		}
		grant, reason := g.decide(context.Background(), u, c.peer, point, session)
		if !reason.Allowed() {
			return handOff // ServeHTTP decides again, audits and answers
		}
		g.opts.Audit.Record(c.ip, grant, point, path, reason)
		g.opts.Metrics.request(u.cfg.Name, point, "allow", reason.String())
		fr.point, fr.grant = point, grant
	} else {
		g.opts.Metrics.request(u.cfg.Name, "", "pass", "")
	}
	start := time.Now()
	out := u.direct.forwardFast(c, u, fr, now)
	g.opts.Metrics.upstreamTime(u.cfg.Name, time.Since(start))
	return out
}

// upstreamFor finds the upstream of a Host header value without
// allocating, when the value is already in canonicalHost's form (lower
// case, a valid port); any other value gives nil, and net/http's path
// refuses or canonicalizes it.
func (g *Gateway) upstreamFor(host []byte) *upstream {
	if len(host) == 0 || len(host) > 255 || host[0] == '[' {
		return nil
	}
	if i := bytes.IndexByte(host, ':'); i >= 0 {
		if !validPort(host[i+1:]) {
			return nil
		}
		host = host[:i]
	}
	for _, b := range host {
		if b >= 'A' && b <= 'Z' || b == '[' || b == ']' {
			return nil
		}
	}
	return g.byHost[string(host)]
}
