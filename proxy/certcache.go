package proxy

import (
	"encoding/base64"
	"sync"
)

// certEncodings caches the RFC 9440 form (":base64:") of certificates:
// the same few device and intermediate certificates are sent upstream on
// every request of a connection, and encoding them each time cost ~5 % of
// the gateway's CPU. Keyed by the DER bytes themselves, so a hit is
// always the same certificate.
type certEncodings struct {
	mu sync.RWMutex
	m  map[string]string
}

// maxCachedCerts bounds the cache; when full it starts over.
const maxCachedCerts = 4096

func newCertEncodings() *certEncodings { return &certEncodings{m: map[string]string{}} }

func (c *certEncodings) get(der []byte) string {
	c.mu.RLock()
	s, ok := c.m[string(der)]
	c.mu.RUnlock()
	if ok {
		return s
	}
	s = ":" + base64.StdEncoding.EncodeToString(der) + ":"
	c.mu.Lock()
	if len(c.m) >= maxCachedCerts {
		c.m = make(map[string]string, maxCachedCerts)
	}
	c.m[string(der)] = s
	c.mu.Unlock()
	return s
}
