package proxy

import (
	"errors"
	"net/http"
	"testing"
)

func TestSessionCookie(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		value string
		err   error
	}{
		{"one", []string{"a=1; sid=s1; b=2"}, "s1", nil},
		{"quoted", []string{`sid="s1"`}, "s1", nil},
		{"none", []string{"a=1"}, "", errNotLoggedIn},
		{"no header", nil, "", errNotLoggedIn},
		{"empty value", []string{"sid="}, "", errNotLoggedIn},
		{"space in value (read as net/http reads it)", []string{"sid=a b"}, "a b", nil},
		{"only another spelling", []string{"SID=s1"}, "", errNotLoggedIn},
		{"two", []string{"sid=s1; sid=s2"}, "", errAmbiguousSession},
		{"two lines", []string{"sid=s1", "sid=s2"}, "", errAmbiguousSession},
		{"upper case twin", []string{"sid=s1; SID=s2"}, "", errAmbiguousSession},
		{"escaped twin", []string{"sid=s1; %73id=s2"}, "", errAmbiguousSession},
		{"spaced twin", []string{"sid=s1;  sid =s2"}, "", errAmbiguousSession},
		{"invalid twin", []string{"sid=s1; sid=s 2"}, "", errAmbiguousSession},
		{"twin without value", []string{"sid=s1; sid"}, "", errAmbiguousSession},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			for _, l := range tc.lines {
				r.Header.Add("Cookie", l)
			}
			v, err := sessionCookie(r.Header["Cookie"], "sid")
			if v != tc.value || !errors.Is(err, tc.err) {
				t.Fatalf("%q %v, want %q %v", v, err, tc.value, tc.err)
			}
		})
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "PHPSESSID=a; PHPSESSID.x=b")
	if _, err := sessionCookie(r.Header["Cookie"], "PHPSESSID_x"); !errors.Is(err, errNotLoggedIn) {
		t.Fatalf("PHP's folding of '.': %v", err)
	}
}

// FuzzSessionCookie: never panics; a value is returned only when exactly
// one cookie could be read as the session and Go reads that same value.
func FuzzSessionCookie(f *testing.F) {
	for _, s := range []string{"sid=1", "sid=1; sid=2", "SID=1", "%73id=1", `sid="x"`, "sid", ";;=;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", line)
		v, err := sessionCookie(r.Header["Cookie"], "sid")
		if err != nil {
			return
		}
		if countCookies(r.Header["Cookie"], "sid") != 1 {
			t.Fatalf("%q: value %q with %d candidates", line, v, countCookies(r.Header["Cookie"], "sid"))
		}
		if c, cerr := r.Cookie("sid"); cerr != nil || c.Value != v {
			t.Fatalf("%q: %q, net/http reads %v %v", line, v, c, cerr)
		}
	})
}
