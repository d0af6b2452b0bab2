package proxy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
)

func TestNormalizePathAccepts(t *testing.T) {
	tests := []struct {
		raw, want string
		fold      bool
	}{
		{"/", "/", false},
		{"/orders/sold", "/orders/sold", false},
		{"//orders///sold", "/orders/sold", false},
		{"/orders/sold/", "/orders/sold/", false},
		{"/%6Frders/sold", "/orders/sold", false},
		{"/orders/%7euser", "/orders/~user", false},
		{"/a%20b", "/a%20b", false},
		{"/files/%e4%b8%ad", "/files/%E4%B8%AD", false},
		{"/files/中", "/files/%E4%B8%AD", false},
		{"/Orders/SOLD", "/Orders/SOLD", false},
		{"/Orders/SOLD", "/orders/sold", true},
		{"/Files/%E4%B8%AD", "/files/%E4%B8%AD", true},
		{"/a.b/c.txt", "/a.b/c.txt", false},
		{"/.well-known/devicegate/whoami", "/.well-known/devicegate/whoami", false},
		{"/x%3Ay", "/x%3Ay", false},
	}
	for _, tc := range tests {
		got, err := NormalizePath(tc.raw, tc.fold)
		if err != nil || got != tc.want {
			t.Errorf("NormalizePath(%q, %v) = %q, %v; want %q", tc.raw, tc.fold, got, err, tc.want)
		}
	}
}

func TestNormalizePathRefusesTricks(t *testing.T) {
	for _, raw := range []string{
		"", "orders", "/./orders/sold", "/orders/./sold", "/a/../orders/sold", "/orders/sold/..", "/orders/sold/.",
		"/%2e%2e/orders", "/%2E/orders", "/.%2e/orders", "/orders%2fsold", "/orders%2Fsold", "/orders%5csold",
		"/orders\\sold", "/orders%00sold", "/orders\x00sold", "/orders%252e%252e", "/orders%25", "/orders;jsessionid=1/sold",
		"/orders/sold;x", "/orders%3bsold", "/orders/sold.", "/orders./sold", "/orders/sold%2e", "/a%", "/a%2", "/a%zz",
		"/a\r\nb", "/a%0d%0ab", "/a\tb", "/a?b", "/a#b", "/" + strings.Repeat("a", MaxPathBytes),
		// trailing whitespace, which IIS strips like a trailing dot
		"/orders/sold%20", "/orders%20/sold", "/orders/sold.%20", "/orders/sold%C2%A0", "/orders/sold\xc2\xa0",
		"/orders/sold%E3%80%80", "/orders/sold%e2%80%8b", "/orders/sold%EF%BB%BF", "/orders/%20",
	} {
		if got, err := NormalizePath(raw, false); !errors.Is(err, ErrBadPath) {
			t.Errorf("NormalizePath(%q) = %q, %v; want refused", raw, got, err)
		}
	}
}

// FuzzNormalizePath: never panics; an accepted path is a fixed point, has
// no dot segments, no "//", and decodes (as an upstream would) to a path
// with the same segments.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/orders/sold", "//a/./b", "/%2e%2e/x", "/a%2fb", "/中", "/A%41"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, fold bool) {
		p, err := NormalizePath(raw, fold)
		if err != nil {
			return
		}
		again, err := NormalizePath(p, fold)
		if err != nil || again != p {
			t.Fatalf("%q -> %q is not a fixed point: %q %v", raw, p, again, err)
		}
		if strings.Contains(p, "//") {
			t.Fatalf("%q -> %q keeps //", raw, p)
		}
		dec, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("%q -> %q does not decode: %v", raw, p, err)
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00;") ||
				strings.TrimRightFunc(seg, unicode.IsSpace) != seg || strings.HasSuffix(seg, ".") {
				t.Fatalf("%q -> %q decodes to a dangerous segment %q", raw, p, seg)
			}
		}
	})
}
