package proxy

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
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
