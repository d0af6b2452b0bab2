// Package proxy is the mTLS gateway in front of back-office apps. This file
// is its path canonicalizer: the route decision and the upstream must see
// the same path, so every ambiguity an upstream might resolve differently
// is refused instead of guessed.
package proxy

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPathBytes bounds a request path.
const MaxPathBytes = 8 << 10

// ErrBadPath is returned for paths that are refused with 400.
var ErrBadPath = errors.New("request path is not acceptable")

// PathError says why a path was refused (for the reason code; the raw path
// is not echoed back).
type PathError struct{ Reason string }

func (e *PathError) Error() string { return ErrBadPath.Error() + ": " + e.Reason }
func (e *PathError) Unwrap() error { return ErrBadPath }

func bad(reason string) error { return &PathError{Reason: reason} }

const upperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unreserved is RFC 3986's unreserved set: the only bytes decoded.
func unreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// NormalizePath canonicalizes the escaped path of a request (as sent, before
// any decoding):
//   - percent-encoded unreserved characters are decoded, other escapes are
//     kept with upper-case hex; raw bytes outside printable ASCII are encoded;
//   - an encoded '/', '\', NUL or '%' (double encoding), a raw '\' or control
//     character, ';' (path parameters), and the dot segments "." and ".." (raw
//     or encoded) are refused, as is a segment ending in '.';
//   - runs of '/' collapse to one;
//   - with foldCase the result is lower-cased (for case-insensitive upstreams).
func NormalizePath(raw string, foldCase bool) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", bad("path must start with /")
	}
	if len(raw) > MaxPathBytes {
		return "", bad("path too long")
	}
	var b strings.Builder
	b.Grow(len(raw))
	segStart := 0 // index in b where the current segment starts
	endSegment := func() error {
		seg := b.String()[segStart:]
		switch {
		case seg == "." || seg == "..":
			return bad("dot segment")
		case strings.HasSuffix(seg, "."):
			return bad("segment ends with a dot")
		case endsWithSpace(seg):
			// IIS drops trailing dots and spaces, so "/orders/sold%20"
			// would be served as the high-risk "/orders/sold".
			return bad("segment ends with whitespace")
		}
		return nil
	}
	b.WriteByte('/')
	segStart = 1
	for i := 1; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '/':
			if err := endSegment(); err != nil {
				return "", err
			}
			if b.String()[b.Len()-1] != '/' { // collapse "//"
				b.WriteByte('/')
			}
			segStart = b.Len()
		case c == '%':
			if i+2 >= len(raw) {
				return "", bad("truncated percent-encoding")
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return "", bad("invalid percent-encoding")
			}
			d := hi<<4 | lo
			i += 2
			switch {
			case d == '/' || d == '\\':
				return "", bad("encoded slash or backslash")
			case d == 0 || d < 0x20 || d == 0x7f:
				return "", bad("encoded control character")
			case d == '%':
				return "", bad("double percent-encoding")
			case d == ';':
				return "", bad("encoded path parameter")
			case unreserved(d):
				b.WriteByte(d)
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex[d>>4])
				b.WriteByte(upperHex[d&15])
			}
		case c == '\\':
			return "", bad("backslash")
		case c == ';':
			return "", bad("path parameter")
		case c < 0x20 || c == 0x7f:
			return "", bad("control character")
		case c == '?' || c == '#':
			return "", bad("query or fragment in path")
		case c > 0x7e, c == ' ': // a raw space (HTTP/2 can carry one) is written as %20
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	if err := endSegment(); err != nil {
		return "", err
	}
	out := b.String()
	if len(out) > MaxPathBytes { // escaping can grow a path past the bound
		return "", bad("path too long")
	}
	if foldCase {
		out = foldPath(out)
	}
	return out, nil
}

// endsWithSpace: the segment (in canonical form) ends in an encoded
// whitespace character: ASCII space, or a Unicode space such as U+00A0 or
// U+3000 (UTF-8 encoded), or a zero-width space or BOM.
func endsWithSpace(seg string) bool {
	n := len(seg)
	if n < 3 || seg[n-3] != '%' {
		return false // the common case: the segment does not end in an escape
	}
	var tail [utf8.UTFMax]byte // the decoded bytes of the last escapes, at most one rune's
	k := len(tail)
	for i := n - 3; i >= 0 && seg[i] == '%' && k > 0; i -= 3 {
		hi, _ := unhex(seg[i+1])
		lo, _ := unhex(seg[i+2])
		k--
		tail[k] = hi<<4 | lo
	}
	r, size := utf8.DecodeLastRune(tail[k:])
	return size > 0 && r != utf8.RuneError && (unicode.IsSpace(r) || r == '\u200b' || r == '\ufeff')
}

// foldPath lower-cases ASCII letters outside percent-escapes (escapes keep
// their canonical upper-case hex).
func foldPath(p string) string {
	b := []byte(p)
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			i += 2
			continue
		}
		if b[i] >= 'A' && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
