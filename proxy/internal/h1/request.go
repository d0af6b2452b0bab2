// Package h1 reads HTTP/1.1 request and response heads for the proxy's
// fast path, without net/http's header maps. Each parser accepts a strict
// subset of what net/http accepts and says HandOff for everything else;
// fuzz tests check that whatever they accept, net/http reads the same way.
package h1

import "bytes"

// This file reads HTTP/1.1 request heads for the fast path.
// It accepts a strict subset of what net/http accepts: a body-less GET or
// HEAD in origin form, CRLF line ends, at most MaxFields header lines,
// one Host, and none of the headers that change framing or the connection.
// Anything else is not refused here: the connection goes to net/http, which
// parses the request again and answers or refuses it with its own rules.
// So this parser never has to decide an ambiguous case; a fuzz test checks
// that whatever it accepts, net/http reads the same way.

// MaxTarget bounds a request target (the proxy's path limit).
const MaxTarget = 8 << 10

// MaxFields bounds the header lines a fast request may have.
const MaxFields = 64

// Head is a parsed request head. Its slices point into the buffer it was
// parsed from and are valid only until that buffer is reused.
type Head struct {
	Method  []byte // GET or HEAD
	Target  []byte // origin form: path and optional ?query
	Host    []byte
	Close   bool // "Connection: close": answer, then close
	Size    int  // bytes of the head, final CRLF included
	NFields int
	Fields  [MaxFields]Field
}

// Field is one header line: name and value (value without surrounding
// whitespace), and what the fast path must do with it.
type Field struct {
	Name, Value []byte
	Kind        FieldKind
}

// FieldKind says what a header line means for the fast path.
type FieldKind uint8

const (
	Forward         FieldKind = iota // end-to-end: the proxy's header rule decides if it is passed on
	Drop                             // hop-by-hop: never passed on
	HostField                        // Host: replaced by the upstream's
	HandOffField                     // needs net/http (framing, upgrades, ...)
	ConnectionField                  // "Connection: keep-alive" or "close": dropped
)

// Status says what to do with the buffered bytes.
type Status uint8

const (
	Complete   Status = iota // a fast request: serve it
	Incomplete               // no end of head yet: read more
	HandOff                  // give the connection to net/http
)

// ParseHead parses one request head at the start of b.
func ParseHead(b []byte, h *Head) Status {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		// Any byte net/http might read differently sends the request there
		// even before the head is complete.
		if bytes.IndexByte(b, '\n') >= 0 && !cleanLines(b) {
			return HandOff
		}
		return Incomplete
	}
	h.Size = end + 4
	h.NFields = 0
	h.Host = nil
	h.Close = false
	lineEnd := bytes.Index(b, []byte("\r\n"))
	if !parseRequestLine(b[:lineEnd], h) {
		return HandOff
	}
	n, ok := parseFields(b[lineEnd+2:end+2], &h.Fields)
	if !ok {
		return HandOff
	}
	h.NFields = n
	hosts := 0
	for i := range n {
		f := &h.Fields[i]
		switch f.Kind = classifyField(f.Name, f.Value); f.Kind {
		case HandOffField:
			return HandOff
		case HostField:
			hosts++
			h.Host = f.Value
		case ConnectionField:
			closes, _ := connectionTokens(f.Value)
			h.Close = h.Close || closes
		}
	}
	if hosts != 1 || !validHost(h.Host) {
		return HandOff
	}
	return Complete
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
func parseRequestLine(line []byte, h *Head) bool {
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
	if target[0] != '/' || len(target) > MaxTarget {
		return false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	h.Method, h.Target = method, target
	return true
}

// parseFields splits a header block (lines ending in CRLF) into fields:
// false when a line is not a plain field or there are too many.
func parseFields(block []byte, fields *[MaxFields]Field) (int, bool) {
	n := 0
	for len(block) > 0 {
		end := bytes.Index(block, []byte("\r\n"))
		if n == MaxFields || !parseField(block[:end], &fields[n]) {
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
func parseField(line []byte, f *Field) bool {
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
	f.Name, f.Value = name, bytes.Trim(value, " \t")
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

// droppedFields are hop-by-hop; they are never passed on.
var droppedFields = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization"}

func classifyField(name, value []byte) FieldKind {
	switch {
	case EqualFold(name, "Host"):
		return HostField
	case EqualFold(name, "Connection"):
		if _, ok := connectionTokens(value); !ok {
			return HandOffField // names headers to drop, or is empty
		}
		return ConnectionField
	}
	for _, k := range handOffFields {
		if EqualFold(name, k) {
			return HandOffField
		}
	}
	for _, k := range droppedFields {
		if EqualFold(name, k) {
			return Drop
		}
	}
	return Forward
}

// connectionTokens reads a Connection value: ok only when every token is
// close or keep-alive (a header named there would have to be dropped
// too, which only net/http does), closes when one is close.
func connectionTokens(value []byte) (closes, ok bool) {
	for v := range bytes.SplitSeq(value, []byte(",")) {
		switch v = bytes.Trim(v, " \t"); {
		case EqualFold(v, "close"):
			closes = true
		case !EqualFold(v, "keep-alive"):
			return false, false
		}
	}
	return closes, true
}

// EqualFold compares b and s ignoring ASCII case (b is a header name
// or value as the fast path reads it, or one net/http parsed).
func EqualFold[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if Lower(b[i]) != Lower(s[i]) {
			return false
		}
	}
	return true
}

// Lower is c in ASCII lower case.
func Lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
