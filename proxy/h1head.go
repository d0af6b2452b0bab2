package proxy

import "bytes"

// This file reads HTTP/1.1 request heads for the fast path (fastpath.go).
// It accepts a strict subset of what net/http accepts: a body-less GET or
// HEAD in origin form, CRLF line ends, at most maxFastHeaders header lines,
// one Host, and none of the headers that change framing or the connection.
// Anything else is not refused here: the connection goes to net/http, which
// parses the request again and answers or refuses it with its own rules.
// So this parser never has to decide an ambiguous case; a fuzz test checks
// that whatever it accepts, net/http reads the same way.

// maxFastHeaders bounds the header lines a fast request may have.
const maxFastHeaders = 64

// h1Head is a parsed request head. Its slices point into the buffer it was
// parsed from and are valid only until that buffer is reused.
type h1Head struct {
	method  []byte // GET or HEAD
	target  []byte // origin form: path and optional ?query
	host    []byte
	close   bool // "Connection: close": answer, then close
	size    int  // bytes of the head, final CRLF included
	nfields int
	fields  [maxFastHeaders]h1Field
}

// h1Field is one header line: name and value (value without surrounding
// whitespace), and what the fast path must do with it.
type h1Field struct {
	name, value []byte
	kind        fieldKind
}

type fieldKind uint8

const (
	fieldForward    fieldKind = iota // end-to-end: passed to the upstream
	fieldDrop                        // hop-by-hop, or set only by the gateway
	fieldHost                        // Host: replaced by the upstream's
	fieldHandOff                     // needs net/http (framing, upgrades, ...)
	fieldConnection                  // "Connection: keep-alive" or "close": dropped
)

// headStatus says what to do with the buffered bytes.
type headStatus uint8

const (
	headComplete   headStatus = iota // a fast request: serve it
	headIncomplete                   // no end of head yet: read more
	headHandOff                      // give the connection to net/http
)

// parseHead parses one request head at the start of b.
func parseHead(b []byte, h *h1Head) headStatus {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		// Any byte net/http might read differently sends the request there
		// even before the head is complete.
		if bytes.IndexByte(b, '\n') >= 0 && !cleanLines(b) {
			return headHandOff
		}
		return headIncomplete
	}
	h.size = end + 4
	h.nfields = 0
	h.host = nil
	h.close = false
	lineEnd := bytes.Index(b, []byte("\r\n"))
	if !parseRequestLine(b[:lineEnd], h) {
		return headHandOff
	}
	n, ok := parseFields(b[lineEnd+2:end+2], &h.fields)
	if !ok {
		return headHandOff
	}
	h.nfields = n
	hosts := 0
	for i := range n {
		f := &h.fields[i]
		switch f.kind = classifyField(f.name, f.value); f.kind {
		case fieldHandOff:
			return headHandOff
		case fieldHost:
			hosts++
			h.host = f.value
		case fieldConnection:
			closes, _ := connectionTokens(f.value)
			h.close = h.close || closes
		}
	}
	if hosts != 1 || !validHost(h.host) {
		return headHandOff
	}
	return headComplete
}

// cleanLines: every LF in b ends a CRLF and no other control byte occurs.
func cleanLines(b []byte) bool {
	for i, c := range b {
		switch {
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return false
		case c == '\r' && i+1 < len(b) && b[i+1] != '\n':
			return false
		case c < ' ' && c != '\t' && c != '\r' && c != '\n', c == 0x7f:
			return false
		}
	}
	return true
}

// parseRequestLine: "GET|HEAD SP origin-form SP HTTP/1.1", nothing else.
func parseRequestLine(line []byte, h *h1Head) bool {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	method := line[:sp]
	if string(method) != "GET" && string(method) != "HEAD" {
		return false
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return false
	}
	target := rest[:sp]
	if target[0] != '/' || len(target) > MaxPathBytes {
		return false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	h.method, h.target = method, target
	return true
}

// parseFields splits a header block (lines ending in CRLF) into fields:
// false when a line is not a plain field or there are too many.
func parseFields(block []byte, fields *[maxFastHeaders]h1Field) (int, bool) {
	n := 0
	for len(block) > 0 {
		end := bytes.Index(block, []byte("\r\n"))
		if n == maxFastHeaders || !parseField(block[:end], &fields[n]) {
			return 0, false
		}
		n++
		block = block[end+2:]
	}
	return n, true
}

// parseField splits "name: value". A name must be a
// token directly followed by ':'; the value must be visible ASCII, obs-text,
// spaces and tabs only (no obs-fold, no other control bytes).
func parseField(line []byte, f *h1Field) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := line[:colon]
	for _, c := range name {
		if !tokenByte(c) {
			return false
		}
	}
	value := line[colon+1:]
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	f.name, f.value = name, bytes.Trim(value, " \t")
	return true
}

// tokenByte: RFC 9110 tchar.
func tokenByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHost: a reg-name, IPv4 or bracketed IPv6 literal with an optional
// port, in the characters a host can have. Anything else goes to net/http.
func validHost(v []byte) bool {
	if len(v) == 0 || len(v) > 255 {
		return false
	}
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// handOffFields change framing or the connection, or ask for something
// only net/http implements; the fast path never handles them.
var handOffFields = []string{
	"Content-Length", "Transfer-Encoding", "Upgrade", "Expect", "Trailer", "Te",
}

// droppedFields are hop-by-hop; they are never passed on (nor is what
// strippedFromClient drops, as in ServeHTTP).
var droppedFields = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization"}

func classifyField(name, value []byte) fieldKind {
	switch {
	case asciiEqualFold(name, "Host"):
		return fieldHost
	case asciiEqualFold(name, "Connection"):
		if _, ok := connectionTokens(value); !ok {
			return fieldHandOff // names headers to drop, or is empty
		}
		return fieldConnection
	case strippedFromClient(name):
		return fieldDrop
	}
	for _, k := range handOffFields {
		if asciiEqualFold(name, k) {
			return fieldHandOff
		}
	}
	for _, k := range droppedFields {
		if asciiEqualFold(name, k) {
			return fieldDrop
		}
	}
	return fieldForward
}

// connectionTokens reads a Connection value: ok only when every token is
// close or keep-alive (a header named there would have to be dropped
// too, which only net/http does), closes when one is close.
func connectionTokens(value []byte) (closes, ok bool) {
	for v := range bytes.SplitSeq(value, []byte(",")) {
		switch v = bytes.Trim(v, " \t"); {
		case asciiEqualFold(v, "close"):
			closes = true
		case !asciiEqualFold(v, "keep-alive"):
			return false, false
		}
	}
	return closes, true
}

// asciiEqualFold compares b and s ignoring ASCII case (b is a header name
// or value as the fast path reads it, or one net/http parsed).
func asciiEqualFold[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
