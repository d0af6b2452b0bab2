package proxy

import (
	"context"
	"crypto"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/devicegate/devicegate/internal/testpki"
)

// countingKeys is a real key source that counts the verifications asking
// it for a key.
type countingKeys struct {
	keySource
	asked atomic.Int32
}

func (c *countingKeys) key(ctx context.Context, kid string) (crypto.PublicKey, map[string]bool, error) {
	c.asked.Add(1)
	return c.keySource.key(ctx, kid)
}

// TestJWTVerifiedOnceWithinItsLimits: a token is verified once per
// sessionCacheTTL, and the cache never outlives the token's own expiry.
func TestJWTVerifiedOnceWithinItsLimits(t *testing.T) {
	appKey := testpki.NewKey(t, testpki.P256)
	algs, _ := algorithmsFor(appKey.Public())
	keys := &countingKeys{keySource: fileKey{pub: appKey.Public(), algs: algs}}
	start := time.Now()
	now := start
	b := newJWTBinder(keys, "app_jwt", "sub", "", "", func() time.Time { return now })
	use := func(tok string) (string, error) {
		return b.User(context.Background(), sessionInput{cookies: []string{"app_jwt=" + tok}})
	}
	long := signJWT(t, appKey, jose.ES256, "shop:alice", time.Hour)
	steps := []struct {
		at       time.Duration
		verifies int32 // verifications so far
	}{
		{0, 1}, {time.Second, 1}, {29 * time.Second, 1}, // cached
		{31 * time.Second, 2}, // the cache's own limit: verified again
		{32 * time.Second, 2},
	}
	for _, s := range steps {
		now = start.Add(s.at)
		if user, err := use(long); err != nil || user != "shop:alice" {
			t.Fatalf("at %v: %q %v", s.at, user, err)
		}
		if got := keys.asked.Load(); got != s.verifies {
			t.Fatalf("at %v: %d verifications, want %d", s.at, got, s.verifies)
		}
	}

	// Expired 25 s ago: still inside the 30 s leeway, so it passes now
	// and is cached; 6 s later it is past the leeway and refused although
	// its cache entry is younger than sessionCacheTTL.
	now = start
	short := signJWT(t, appKey, jose.ES256, "shop:bob", -25*time.Second)
	if user, err := use(short); err != nil || user != "shop:bob" {
		t.Fatalf("inside the leeway: %q %v", user, err)
	}
	now = start.Add(6 * time.Second)
	if _, err := use(short); !errors.Is(err, errNotLoggedIn) {
		t.Fatalf("past its expiry: %v, want not logged in", err)
	}
	// A token that fails verification is never cached as a pass.
	other := testpki.NewKey(t, testpki.P256)
	forged := signJWT(t, other, jose.ES256, "shop:alice", time.Hour)
	for range 2 {
		if _, err := use(forged); !errors.Is(err, errNotLoggedIn) {
			t.Fatalf("forged: %v", err)
		}
	}
}
