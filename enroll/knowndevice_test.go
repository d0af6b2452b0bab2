package enroll

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testPortal(now time.Time) *Portal {
	return &Portal{opts: Options{CookieKey: []byte(strings.Repeat("k", 32)), Now: func() time.Time { return now }}}
}

// withCookie is a request carrying the device cookie value v.
func withCookie(v string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	if v != "" {
		r.AddCookie(&http.Cookie{Name: deviceCookie, Value: v})
	}
	return r
}

// remembered is the device cookie rememberDevice sets for account on top
// of the request's.
func remembered(p *Portal, r *http.Request, account string) string {
	w := httptest.NewRecorder()
	p.rememberDevice(w, r, account)
	for _, c := range w.Result().Cookies() {
		if c.Name == deviceCookie {
			return c.Value
		}
	}
	return ""
}

func TestKnownDevice(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	p := testPortal(t0)
	owner := remembered(p, withCookie(""), "owner:shop")
	both := remembered(p, withCookie(owner), "sub:shop:alice")
	id := strings.SplitN(owner, ".", 2)[0]
	tampered := owner[:len(owner)-2] + "AA"
	tests := []struct {
		name, cookie, account string
		at                    time.Time
		known                 bool
	}{
		{"its account", owner, "owner:shop", t0, true},
		{"another account", owner, "owner:other", t0, false},
		{"a staff account of the store", owner, "sub:shop:alice", t0, false},
		{"second entry, first account", both, "owner:shop", t0, true},
		{"second entry, second account", both, "sub:shop:alice", t0, true},
		{"expired", owner, "owner:shop", t0.Add(deviceFor + time.Second), false},
		{"tampered MAC", tampered, "owner:shop", t0, false},
		{"no cookie", "", "owner:shop", t0, false},
		{"garbage", "a.b.c~~.~x", "owner:shop", t0, false},
		{"too long", strings.Repeat(owner+"~", 20), "owner:shop", t0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := testPortal(tc.at).knownDevice(withCookie(tc.cookie), tc.account)
			if (got != "") != tc.known {
				t.Fatalf("knownDevice = %q, want known=%v", got, tc.known)
			}
		})
	}
	// A renewal keeps the browser's id for the account, and the cookie
	// keeps at most maxDeviceEntries entries.
	if again := remembered(p, withCookie(both), "owner:shop"); !strings.HasPrefix(again, id+".") || strings.Count(again, "~") != 1 {
		t.Fatalf("renewal: %q", again)
	}
	c := ""
	for i := range 10 {
		c = remembered(p, withCookie(c), "owner:shop"+strings.Repeat("x", i))
	}
	if n := strings.Count(c, "~") + 1; n != maxDeviceEntries {
		t.Fatalf("%d entries, want %d", n, maxDeviceEntries)
	}
}

// Any cookie value: no panic, nothing known without a valid MAC for the
// account, and what rememberDevice writes is known afterwards.
func FuzzKnownDevice(f *testing.F) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	p := testPortal(t0)
	good := remembered(p, withCookie(""), "owner:shop")
	for _, s := range []string{"", good, good + "~" + good, "a.b.c", "~", "..", "x.99999999999.y", "x.-1.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := withCookie(v)
		if id := p.knownDevice(r, "owner:other"); id != "" && !strings.Contains(v, id) {
			t.Fatalf("known id %q not from the cookie %q", id, v)
		}
		next := remembered(p, r, "owner:other")
		if p.knownDevice(withCookie(next), "owner:other") == "" {
			t.Fatalf("the cookie just written is not known: %q", next)
		}
		if strings.Count(next, "~")+1 > maxDeviceEntries {
			t.Fatalf("too many entries: %q", next)
		}
	})
}
