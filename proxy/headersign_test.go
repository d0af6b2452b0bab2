package proxy

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/testpki"
)

// Pooled HMAC states never mix requests: every concurrently signed request
// verifies, and a changed field does not.
func TestIdentitySignerConcurrent(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := newIdentitySigner(key, newCertEncodings())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/orders/%d", i)
			r := httptest.NewRequest("GET", path, nil)
			g := Grant{Principal: identity.Principal{DeviceID: fmt.Sprint("dev", i)}, SubName: fmt.Sprint("shop:user", i)}
			s.sign(r.Header, g, "orders.sold", "GET", path, nil, time.Now())
			if sub, dev, err := VerifyIdentity(key, r, time.Minute); err != nil || sub != g.SubName || dev != g.Principal.DeviceID {
				errs <- fmt.Errorf("request %d: %q %q %v", i, sub, dev, err)
				return
			}
			r.Header.Set(HeaderSubaccount, "shop:mallory")
			if _, _, err := VerifyIdentity(key, r, time.Minute); err == nil {
				errs <- fmt.Errorf("request %d: a changed sub-account still verifies", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The fast path's header lines are exactly the headers sign sets, and a
// value with a line break is refused rather than sent.
func TestAppendSignedMatchesSign(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := newIdentitySigner(key, newCertEncodings())
	pki := testpki.New(t)
	leaf, _ := pki.Leaf(t, testpki.LeafOptions{})
	peer := []*x509.Certificate{leaf, pki.Intermediate}
	g := Grant{Principal: identity.Principal{DeviceID: "dev1"}, SubName: "shop:alice"}
	now := time.Now()
	want := http.Header{}
	s.sign(want, g, "orders.sold", "GET", "/orders/sold", peer, now)

	lines, ok := s.appendSigned(nil, g, "orders.sold", "GET", "/orders/sold", now)
	lines = append(lines, s.certLines(peer)...)
	if !ok {
		t.Fatal("refused")
	}
	got, err := textproto.NewReader(bufio.NewReader(strings.NewReader(string(lines) + "\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(http.Header(got), want) {
		t.Fatalf("appendSigned:\n%v\nsign:\n%v", got, want)
	}
	g.SubName = "shop:alice\r\nX-Devicegate-Subaccount: shop:boss"
	if _, ok := s.appendSigned(nil, g, "orders.sold", "GET", "/orders/sold", now); ok {
		t.Fatal("a value with CRLF was written")
	}
}
