package ca

import (
	"crypto/tls"
	"sync"
)

// FollowDeviceCAs makes the server config c name, and verify client
// certificates against (as c.ClientAuth says), the device intermediates
// in use at each handshake: a rotation Run picks up from the CA directory
// applies to the next handshake, without a restart. Set c's other fields
// first: after a rotation, handshakes use a copy of c (one per set).
func (a *Authority) FollowDeviceCAs(c *tls.Config) {
	first := a.Keys()
	c.ClientCAs = first.DevicePool()
	base := c
	var (
		mu   sync.Mutex
		keys *Keys
		cfg  *tls.Config
	)
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		k := a.Keys()
		if k == first {
			return nil, nil // c itself
		}
		mu.Lock()
		defer mu.Unlock()
		if keys != k {
			next := base.Clone()
			next.GetConfigForClient = nil
			next.ClientCAs = k.DevicePool()
			keys, cfg = k, next
		}
		return cfg, nil
	}
}
