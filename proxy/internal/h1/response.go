package h1

import "bytes"

// This file reads upstream response heads for the fast path without
// net/http's header map. Like request.go it takes a strict subset: an
// HTTP/1.1 final response whose body is framed by one Content-Length or by
// "Transfer-Encoding: chunked" (or has none: HEAD, 204, 304). Anything
// else (1xx, HTTP/1.0, a body that ends with the connection, announced
// trailers, odd framing, Connection naming other headers) is left to
// http.ReadResponse. A fuzz test checks that whatever this parser accepts,
// http.ReadResponse reads the same way.

// ResponseHead is a parsed response head; slices point into the read buffer.
type ResponseHead struct {
	Status   int
	Size     int   // bytes of the head, final CRLF included
	Length   int64 // Content-Length; -1 when chunked or absent
	Chunked  bool
	Close    bool // the upstream closes the connection after this response
	Bodyless bool
	NFields  int
	Fields   [MaxFields]Field // Forward or Drop
}

// ParseResponseHead parses the head at the start of b. isHead: the request
// was HEAD (no body whatever the head says).
func ParseResponseHead(b []byte, isHead bool, h *ResponseHead) Status {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if bytes.IndexByte(b, '\n') >= 0 && !cleanLines(b) {
			return HandOff
		}
		return Incomplete
	}
	*h = ResponseHead{Size: end + 4, Length: -1}
	lineEnd := bytes.Index(b, []byte("\r\n"))
	if !parseStatusLine(b[:lineEnd], h) {
		return HandOff
	}
	n, ok := parseFields(b[lineEnd+2:end+2], &h.Fields)
	if !ok {
		return HandOff
	}
	h.NFields = n
	lengths, encodings := 0, 0
	for i := range n {
		f := &h.Fields[i]
		switch f.Kind = classifyResponseField(f.Name, f.Value, h); f.Kind {
		case HandOffField:
			return HandOff
		case contentLengthField:
			lengths++
			f.Kind = Forward
		case chunkedField:
			encodings++
			f.Kind = Drop // re-framed for the client
		}
	}
	h.Bodyless = isHead || h.Status == 204 || h.Status == 304
	switch {
	case lengths > 1, encodings > 1, lengths == 1 && encodings == 1:
		return HandOff // ambiguous framing: net/http's rules apply
	case h.Bodyless && encodings > 0:
		return HandOff
	case !h.Bodyless && lengths == 0 && encodings == 0:
		return HandOff // ends with the connection
	}
	h.Chunked = encodings == 1
	return Complete
}

// Response-only field kinds, used while parsing.
const (
	contentLengthField FieldKind = iota + 100
	chunkedField
)

// parseStatusLine: "HTTP/1.1 NNN reason" with a final status (200-599).
func parseStatusLine(line []byte, h *ResponseHead) bool {
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
	h.Status = code
	return true
}

func classifyResponseField(name, value []byte, h *ResponseHead) FieldKind {
	switch {
	case EqualFold(name, "Content-Length"):
		n, ok := parseLength(value)
		if !ok {
			return HandOffField
		}
		h.Length = n
		return contentLengthField
	case EqualFold(name, "Transfer-Encoding"):
		if !EqualFold(value, "chunked") {
			return HandOffField
		}
		return chunkedField
	case EqualFold(name, "Connection"):
		closes, ok := connectionTokens(value)
		if !ok {
			return HandOffField
		}
		h.Close = h.Close || closes
		return Drop
	case EqualFold(name, "Trailer"):
		return HandOffField
	}
	for _, k := range [...]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Upgrade"} {
		if EqualFold(name, k) {
			return Drop
		}
	}
	return Forward
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
