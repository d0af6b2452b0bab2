package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"time"

	"github.com/devicegate/devicegate/proxy/internal/h1"
)

// fastRequest is what the fast path sends upstream besides the client's
// own end-to-end headers.
type fastRequest struct {
	path  string // canonical, escaped, with the upstream's base path
	query []byte // "?..." or nil
	point string // permission point of an allowed high-risk request, else ""
	grant Grant  // who the decision vouched for (point != "")
}

// Static requests for http.ReadResponse, which only reads their method.
var (
	getRequest  = &http.Request{Method: http.MethodGet}
	headRequest = &http.Request{Method: http.MethodHead}
)

// forwardFast sends the request in c.head upstream and relays the answer.
func (f *directForwarder) forwardFast(c *fastConn, u *upstream, fr fastRequest, now time.Time) fastOutcome {
	req := getRequest
	if string(c.head.Method) == http.MethodHead {
		req = headRequest
	}
	for attempt := 0; ; attempt++ {
		uc, err := f.get(context.Background())
		if err != nil {
			return c.upstreamFailed(u, err)
		}
		if err := uc.armDeadline(now, f.timeout); err != nil {
			uc.Close()
			return c.upstreamFailed(u, err)
		}
		if !writeFastHead(uc.bw, c, u, fr, req.Method, f.host, now) {
			uc.Close()
			return c.upstreamFailed(u, errUnsendableIdentity)
		}
		if err := send(uc); err != nil {
			uc.Close()
			// As in forward: a kept-alive connection the upstream closed
			// meanwhile gets one more try on a fresh one.
			if uc.reused && attempt == 0 && errors.Is(err, errNoResponse) {
				continue
			}
			return c.upstreamFailed(u, err)
		}
		if out, ok := f.relayRaw(c, uc, req == headRequest); ok {
			return out
		}
		resp, err := readResponse(uc, req)
		if err != nil {
			uc.Close()
			return c.upstreamFailed(u, err)
		}
		return f.relayFast(c, uc, resp, req == headRequest)
	}
}

// writeFastHead writes the upstream request: the canonical path, the
// client's query and end-to-end headers as they came (the parser marked
// the ones strippedFromClient drops), and the gateway's own lines.
func writeFastHead(bw *bufio.Writer, c *fastConn, u *upstream, fr fastRequest, method, host string, now time.Time) bool {
	h := &c.head
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(fr.path)
	bw.Write(fr.query)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for i := range h.NFields {
		fl := &h.Fields[i]
		if fl.Kind != h1.Forward || strippedFromClient(fl.Name) {
			continue
		}
		bw.Write(fl.Name)
		bw.WriteString(": ")
		bw.Write(fl.Value)
		bw.WriteString("\r\n")
	}
	var identity []byte
	if fr.point != "" {
		var ok bool
		if identity, ok = c.identityLines(u, fr, method, now); !ok {
			return false
		}
	}
	writeGatewayHeaders(bw, c.ip, h.Host, true, identity)
	bw.WriteString("\r\n")
	return true
}

// identityLines is upstream.identityLines for a connection: the signed
// lines of header binding are reused while they stay the same (see
// signedLines), the certificate lines are made once per connection.
func (c *fastConn) identityLines(u *upstream, fr fastRequest, method string, now time.Time) ([]byte, bool) {
	if u.mode != bindingHeader {
		var ok bool
		c.identity, ok = appendIdentity(c.identity[:0], fr.grant, fr.point)
		return c.identity, ok
	}
	if c.certLines == nil {
		// The same for every upstream: the encodings come from the
		// gateway's one certificate cache.
		c.certLines = u.signer.certLines(c.state.PeerCertificates)
	}
	lines, ok := c.signed.get(u.signer, fr, method, now)
	if !ok {
		return nil, false
	}
	c.identity = append(append(c.identity[:0], lines...), c.certLines...)
	return c.identity, true
}

// relayRaw relays a response whose head h1.ParseResponseHead accepts, with
// its header lines as they came (hop-by-hop ones dropped); ok is false when
// the head is one for http.ReadResponse (nothing was consumed then).
func (f *directForwarder) relayRaw(c *fastConn, uc *upstreamConn, isHead bool) (fastOutcome, bool) {
	var h h1.ResponseHead
	for {
		b, _ := uc.br.Peek(uc.br.Buffered())
		switch h1.ParseResponseHead(b, isHead, &h) {
		case h1.HandOff:
			return 0, false
		case h1.Incomplete:
			if len(b) == uc.br.Size() {
				return 0, false
			}
			if _, err := uc.br.Peek(len(b) + 1); err != nil {
				return 0, false // readResponse reports it
			}
			continue
		}
		break
	}
	buf := f.buffers.Get()
	defer f.buffers.Put(buf)
	out := appendStatusLine(buf[:0], h.Status)
	for i := range h.NFields {
		if fl := &h.Fields[i]; fl.Kind == h1.Forward {
			out = append(append(append(append(out, fl.Name...), ": "...), fl.Value...), "\r\n"...)
		}
	}
	if h.Chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	out = append(c.connectionClose(out), "\r\n"...)
	uc.br.Discard(h.Size)
	switch {
	case h.Bodyless:
		return f.finishFast(c, uc, h.Close, out), true
	case h.Chunked:
		if err := c.write(out); err != nil {
			uc.Close()
			return closeConn, true
		}
		if !f.copyBody(c, uc, buf, httputil.NewChunkedReader(uc.br), true) {
			return closeConn, true
		}
		// Trailers (none announced, or net/http would relay this one) are
		// read and, as RFC 9110 allows, not passed on.
		if _, err := textproto.NewReader(uc.br).ReadMIMEHeader(); err != nil {
			uc.Close()
			return closeConn, true
		}
		return f.finishFast(c, uc, h.Close, append(buf[:0], "0\r\n\r\n"...)), true
	}
	return f.relayLength(c, uc, buf, out, uc.br, h.Length, h.Close), true
}

// relayFast writes a response read by http.ReadResponse to the client: the
// same framing rules as relayRaw, from its header map; announced trailers
// are passed on.
func (f *directForwarder) relayFast(c *fastConn, uc *upstreamConn, resp *http.Response, isHead bool) fastOutcome {
	buf := f.buffers.Get()
	defer f.buffers.Put(buf)
	out := appendStatusLine(buf[:0], resp.StatusCode)
	connection := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if hopByHop(k) || (connection != nil && listedInConnection(connection, k)) {
			continue
		}
		for _, v := range vv {
			out = appendHeaderLine(out, k, v)
		}
	}
	out = c.connectionClose(out)
	bodyless := isHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	if bodyless {
		return f.finishFast(c, uc, resp.Close, append(out, "\r\n"...))
	}
	if resp.ContentLength >= 0 {
		return f.relayLength(c, uc, buf, append(out, "\r\n"...), resp.Body, resp.ContentLength, resp.Close)
	}
	out = append(out, "Transfer-Encoding: chunked\r\n"...)
	first := true
	for k := range resp.Trailer {
		if first {
			out = append(out, "Trailer: "...)
		} else {
			out = append(out, ", "...)
		}
		out, first = append(out, k...), false
	}
	if !first {
		out = append(out, "\r\n"...)
	}
	out = append(out, "\r\n"...)
	if err := c.write(out); err != nil {
		uc.Close()
		return closeConn
	}
	if !f.copyBody(c, uc, buf, resp.Body, true) {
		return closeConn
	}
	end := append(buf[:0], "0\r\n"...)
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			end = appendHeaderLine(end, k, v)
		}
	}
	return f.finishFast(c, uc, resp.Close, append(end, "\r\n"...))
}

// relayLength relays head and a body of length n: in one write when both
// fit the buffer (the usual page: one TLS record, one system call).
func (f *directForwarder) relayLength(c *fastConn, uc *upstreamConn, buf, head []byte, body io.Reader, n int64, closeAfter bool) fastOutcome {
	k := int64(len(head))
	if cap(head) == cap(buf) && k+n <= int64(len(buf)) {
		if _, err := io.ReadFull(body, buf[k:k+n]); err != nil {
			uc.Close()
			return closeConn
		}
		return f.finishFast(c, uc, closeAfter, buf[:k+n])
	}
	if err := c.write(head); err != nil {
		uc.Close()
		return closeConn
	}
	if !f.copyBody(c, uc, buf, io.LimitReader(body, n), false) {
		return closeConn
	}
	return f.finishFast(c, uc, closeAfter, nil)
}

// copyBody passes body on per read, so streams are not held back; chunked
// re-frames each read as a chunk. A body that breaks off (upstream error,
// or fewer bytes than promised) or a client that cannot be written to ends
// both connections: false.
func (f *directForwarder) copyBody(c *fastConn, uc *upstreamConn, buf []byte, body io.Reader, chunked bool) bool {
	const room = 8 // chunk-size line in front of the data
	for reads := 0; ; reads++ {
		n, err := f.readBody(uc, body, buf[room:len(buf)-2], reads)
		if n > 0 {
			chunk := buf[room : room+n]
			if chunked {
				var hex [8]byte
				size := append(strconv.AppendInt(hex[:0], int64(n), 16), '\r', '\n')
				start := room - len(size)
				copy(buf[start:], size)
				chunk = append(buf[start:room+n], '\r', '\n')
			}
			if werr := c.write(chunk); werr != nil {
				uc.Close()
				return false
			}
		}
		if err == io.EOF {
			if lr, ok := body.(*io.LimitedReader); ok && lr.N > 0 {
				uc.Close() // the upstream closed before the promised length
				return false
			}
			return true
		}
		if err != nil {
			uc.Close()
			return false
		}
	}
}

// finishFast keeps or closes the upstream connection and writes the last
// bytes of the response.
func (f *directForwarder) finishFast(c *fastConn, uc *upstreamConn, upstreamCloses bool, last []byte) fastOutcome {
	if upstreamCloses || uc.br.Buffered() > 0 {
		uc.Close()
	} else {
		f.put(uc)
	}
	if len(last) > 0 {
		if err := c.write(last); err != nil {
			return closeConn
		}
	}
	return served
}

// connectionClose adds "Connection: close" when the client asked for it or
// the server is shutting down (the connection ends after this response).
func (c *fastConn) connectionClose(out []byte) []byte {
	if c.srv.closing.Load() {
		// Shutting down: this is the connection's last answer (a client
		// sending its next request at once would otherwise keep it busy,
		// and never idle, until the shutdown's deadline).
		c.head.Close = true
	}
	if c.head.Close {
		return append(out, "Connection: close\r\n"...)
	}
	return out
}

func appendStatusLine(dst []byte, code int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	if text := http.StatusText(code); text != "" {
		dst = append(dst, text...)
	} else {
		dst = append(dst, "status code "...)
		dst = strconv.AppendInt(dst, int64(code), 10)
	}
	return append(dst, "\r\n"...)
}

// upstreamFailed answers as Gateway.upstreamFailed does (502, or 504 on a
// timeout, a plain-text body, the error only logged).
func (c *fastConn) upstreamFailed(u *upstream, err error) fastOutcome {
	status := upstreamStatus(err)
	c.srv.gw.opts.Log.Warn("upstream error", "upstream", u.cfg.Name, "err", err)
	var buf [256]byte
	out := c.connectionClose(appendStatusLine(buf[:0], status))
	out = append(out, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"+
		"Content-Length: 21\r\n\r\nupstream unavailable\n"...)
	if err := c.write(out); err != nil {
		return closeConn
	}
	return served
}

// signedLines keeps a connection's last signed identity lines: the same
// grant, point, method and path in the same second sign to the same bytes,
// so a client repeating a request costs no HMAC.
type signedLines struct {
	signer                           *identitySigner
	second                           int64
	sub, device, point, method, path string
	lines                            []byte
}

func (sl *signedLines) get(s *identitySigner, fr fastRequest, method string, now time.Time) ([]byte, bool) {
	sec := now.Unix()
	if sl.lines != nil && sl.signer == s && sl.second == sec && sl.point == fr.point && sl.method == method && sl.path == fr.path &&
		sl.sub == fr.grant.SubName && sl.device == fr.grant.Principal.DeviceID {
		return sl.lines, true
	}
	lines, ok := s.appendSigned(sl.lines[:0], fr.grant, fr.point, method, fr.path, now)
	if !ok {
		sl.lines = nil
		return nil, false
	}
	*sl = signedLines{signer: s, second: sec, sub: fr.grant.SubName, device: fr.grant.Principal.DeviceID,
		point: fr.point, method: method, path: fr.path, lines: lines}
	return lines, true
}
