package proxy

import "bytes"

// This file reads upstream response heads for the fast path without
// net/http's header map. Like h1head.go it takes a strict subset: an
// HTTP/1.1 final response whose body is framed by one Content-Length or by
// "Transfer-Encoding: chunked" (or has none: HEAD, 204, 304). Anything
// else (1xx, HTTP/1.0, a body that ends with the connection, announced
// trailers, odd framing, Connection naming other headers) is left to
// http.ReadResponse. A fuzz test checks that whatever this parser accepts,
// http.ReadResponse reads the same way.

// h1RespHead is a parsed response head; slices point into the read buffer.
type h1RespHead struct {
	status   int
	size     int   // bytes of the head, final CRLF included
	length   int64 // Content-Length; -1 when chunked or absent
	chunked  bool
	close    bool // the upstream closes the connection after this response
	bodyless bool
	nfields  int
	fields   [maxFastHeaders]h1Field // fieldForward or fieldDrop
}

// parseResponseHead parses the head at the start of b. isHead: the request
// was HEAD (no body whatever the head says).
func parseResponseHead(b []byte, isHead bool, h *h1RespHead) headStatus {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if bytes.IndexByte(b, '\n') >= 0 && !cleanLines(b) {
			return headHandOff
		}
		return headIncomplete
	}
	*h = h1RespHead{size: end + 4, length: -1}
	lineEnd := bytes.Index(b, []byte("\r\n"))
	if !parseStatusLine(b[:lineEnd], h) {
		return headHandOff
	}
	n, ok := parseFields(b[lineEnd+2:end+2], &h.fields)
	if !ok {
		return headHandOff
	}
	h.nfields = n
	lengths, encodings := 0, 0
	for i := range n {
		f := &h.fields[i]
		switch f.kind = classifyResponseField(f.name, f.value, h); f.kind {
		case fieldHandOff:
			return headHandOff
		case fieldContentLength:
			lengths++
			f.kind = fieldForward
		case fieldChunked:
			encodings++
			f.kind = fieldDrop // re-framed for the client
		}
	}
	h.bodyless = isHead || h.status == 204 || h.status == 304
	switch {
	case lengths > 1, encodings > 1, lengths == 1 && encodings == 1:
		return headHandOff // ambiguous framing: net/http's rules apply
	case h.bodyless && encodings > 0:
		return headHandOff
	case !h.bodyless && lengths == 0 && encodings == 0:
		return headHandOff // ends with the connection
	}
	h.chunked = encodings == 1
	return headComplete
}

// Response-only field kinds, used while parsing.
const (
	fieldContentLength fieldKind = iota + 100
	fieldChunked
)

// parseStatusLine: "HTTP/1.1 NNN reason" with a final status (200-599).
func parseStatusLine(line []byte, h *h1RespHead) bool {
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return false
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 {
		return false
	}
	for _, c := range line[min(13, len(line)):] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	h.status = code
	return true
}

func classifyResponseField(name, value []byte, h *h1RespHead) fieldKind {
	switch {
	case asciiEqualFold(name, "Content-Length"):
		n, ok := parseLength(value)
		if !ok {
			return fieldHandOff
		}
		h.length = n
		return fieldContentLength
	case asciiEqualFold(name, "Transfer-Encoding"):
		if !asciiEqualFold(value, "chunked") {
			return fieldHandOff
		}
		return fieldChunked
	case asciiEqualFold(name, "Connection"):
		closes, ok := connectionTokens(value)
		if !ok {
			return fieldHandOff
		}
		h.close = h.close || closes
		return fieldDrop
	case asciiEqualFold(name, "Trailer"):
		return fieldHandOff
	}
	for _, k := range [...]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Upgrade"} {
		if asciiEqualFold(name, k) {
			return fieldDrop
		}
	}
	return fieldForward
}

// parseLength: 1 to 18 decimal digits, nothing else.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
