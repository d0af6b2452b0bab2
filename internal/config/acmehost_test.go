package config

import (
	"strings"
	"testing"
)

func TestValidateACMEHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"proxy.shop.internal", true},
		{"*.shop.internal", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"10.0.0.0/8", true},
		{"fd00::/48", true},
		{"0.0.0.0/0", false},
		{"::/0", false},
		{"*.com", false},
		{"*", false},
		{"", false},
		{"a..b", false},
		{"-a.b", false},
		{"a_b.example", false},
		{"host.example/path", false},
	} {
		if err := ValidateACMEHost(tc.host); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.host, err, tc.ok)
		}
	}
}

// Whatever it accepts is a plain name, wildcard, IP or range: no spaces,
// schemes, ports or paths reach the ACME name policy.
func FuzzValidateACMEHost(f *testing.F) {
	for _, s := range []string{"proxy.shop.internal", "*.shop.internal", "10.0.0.0/8", "::1", "a/b", "*.*.x", "x:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if ValidateACMEHost(h) != nil {
			return
		}
		for _, c := range h {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-*:/", c)
			if !ok {
				t.Fatalf("accepted %q", h)
			}
		}
		if strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
			t.Fatalf("accepted a wildcard %q", h)
		}
	})
}
