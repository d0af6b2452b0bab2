package proxy

import (
	"encoding/base64"
	"fmt"
	"testing"
)

func TestCertEncodings(t *testing.T) {
	c := newCertEncodings()
	for i := range maxCachedCerts + 10 { // past the bound: starts over, stays right
		der := []byte(fmt.Sprintf("certificate %d", i))
		want := ":" + base64.StdEncoding.EncodeToString(der) + ":"
		for range 2 {
			if got := c.get(der); got != want {
				t.Fatalf("cert %d: %q, want %q", i, got, want)
			}
		}
	}
	if len(c.m) > maxCachedCerts {
		t.Fatalf("cache holds %d entries, bound %d", len(c.m), maxCachedCerts)
	}
}
