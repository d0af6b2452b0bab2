package proxy

import (
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, name, canonical string }{
		{"localhost", "localhost", "localhost"},
		{"LocalHost:9443", "localhost", "localhost:9443"},
		{"127.0.0.1:1", "127.0.0.1", "127.0.0.1:1"},
		{"[::1]:443", "::1", "[::1]:443"},
		{"[::1]", "::1", "[::1]"},
		{"shop_1.example", "shop_1.example", "shop_1.example"},
	}
	for _, tc := range tests {
		name, canonical, ok := canonicalHost(tc.in)
		if !ok || name != tc.name || canonical != tc.canonical {
			t.Errorf("canonicalHost(%q) = %q %q %v", tc.in, name, canonical, ok)
		}
	}
	for _, bad := range []string{"", "localhost:evil.com", "localhost:", "localhost:0", "localhost:65536", "localhost:080",
		"localhost:+80", "localhost:1:2", ":443", "[::1", "[::1]x", "[::1]:", "[a_b]", "a b", "a\tb", "a/b", "a@b", "ä.example",
		"a]b:80", "[[::1]]:80", "[::1]:80:80", strings.Repeat("a", 256)} {
		if name, canonical, ok := canonicalHost(bad); ok {
			t.Errorf("canonicalHost(%q) = %q %q, want refused", bad, name, canonical)
		}
	}
}

// FuzzCanonicalHost: a canonical form is a fixed point, and the fast path
// never routes a Host that canonicalHost refuses or routes elsewhere.
func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{"localhost", "LOCALHOST:443", "[::1]:80", "localhost:evil.com", "a:1:2", "x:0443"} {
		f.Add(s)
	}
	u := &upstream{}
	g := &Gateway{byHost: map[string]*upstream{"localhost": u, "::1": u, "shop.example": u}}
	f.Fuzz(func(t *testing.T, h string) {
		name, canonical, ok := canonicalHost(h)
		if fast := g.upstreamFor([]byte(h)); len(h) > 0 && fast != nil && (!ok || g.byHost[name] != fast) {
			t.Fatalf("%q: the fast path routes what ServeHTTP refuses", h)
		}
		if !ok {
			return
		}
		name2, canonical2, ok2 := canonicalHost(canonical)
		if !ok2 || name2 != name || canonical2 != canonical {
			t.Fatalf("%q -> %q is not a fixed point: %q %q %v", h, canonical, name2, canonical2, ok2)
		}
		if name != strings.ToLower(name) || strings.ContainsAny(canonical, " \t\r\n/@?#") {
			t.Fatalf("%q -> %q %q", h, name, canonical)
		}
	})
}

// A Host already in canonical form costs no allocation (net/http's path
// checks every request's Host).
func TestCanonicalHostDoesNotAllocate(t *testing.T) {
	h := "shop.example:9443"
	if n := testing.AllocsPerRun(100, func() { _, _, _ = canonicalHost(h) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// The fast path picks the same upstream as ServeHTTP for every Host form,
// or leaves the request to ServeHTTP; it never routes a Host ServeHTTP
// refuses.
func TestUpstreamForMatchesCanonicalHost(t *testing.T) {
	u := &upstream{}
	g := &Gateway{byHost: map[string]*upstream{"shop.example": u, "127.0.0.1": u, "::1": u}}
	for _, host := range []string{
		"shop.example", "SHOP.Example:8443", "shop.example:", "127.0.0.1:443", "[::1]:443", "[::1]",
		"::1", "other", "shop.example:1:2", "[::1]x", "a]b:80", "[[::1]]:80", "shop.example:evil.com",
		"shop.example:0", "shop.example:65536", "shop.example:080", "shop.example:+80",
	} {
		fast := g.upstreamFor([]byte(host))
		name, _, ok := canonicalHost(host)
		if fast != nil && (!ok || fast != g.byHost[name]) {
			t.Errorf("%q: fast path routes where ServeHTTP does not", host)
		}
		if fast == nil && ok && g.byHost[name] != nil && host == strings.ToLower(host) && host[0] != '[' {
			t.Errorf("%q: fast path misses an upstream ServeHTTP finds", host)
		}
	}
}
