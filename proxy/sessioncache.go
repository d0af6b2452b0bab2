package proxy

import (
	"crypto/sha256"
	"sync"
	"time"
)

// sessionCacheTTL is how long a session's user, once checked, is reused:
// an app's whoami answer, or a JWT's verified claims (issue: <= 30 s). A
// logout or a key taken out of a JWKS takes effect after at most this.
const sessionCacheTTL = 30 * time.Second

// maxSessionCache bounds a cache: a flood of sessions costs lookups, not
// memory.
const maxSessionCache = 10000

// sessionCache maps a hash of what identified a session (never the secret
// itself) to its user, each entry valid in [from, until).
type sessionCache struct {
	mu      sync.Mutex
	entries map[[32]byte]sessionEntry
}

type sessionEntry struct {
	user        string
	from, until time.Time
}

func newSessionCache() *sessionCache {
	return &sessionCache{entries: map[[32]byte]sessionEntry{}}
}

// sessionKey hashes the parts that identify a session, each one framed by
// its length so that no two different lists hash alike.
func sessionKey(parts ...string) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var key [32]byte
	h.Sum(key[:0])
	return key
}

func (c *sessionCache) get(key [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || now.Before(e.from) || !now.Before(e.until) {
		return "", false
	}
	return e.user, true
}

func (c *sessionCache) put(key [32]byte, e sessionEntry) {
	c.mu.Lock()
	if len(c.entries) >= maxSessionCache {
		clear(c.entries)
	}
	c.entries[key] = e
	c.mu.Unlock()
}
