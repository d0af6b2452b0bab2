package ca

import (
	"crypto/tls"
	"crypto/x509"
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

// verifiedNow returns the client certificate of a connection whose
// handshake verified it against a device intermediate that is still
// trusted now. A connection opened before a retirement Run picked up
// (HTTP keep-alive) thus keeps no power after it; new handshakes and
// resumed sessions are refused by FollowDeviceCAs's config itself.
func (a *Authority) verifiedNow(cs *tls.ConnectionState) (*x509.Certificate, bool) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil, false
	}
	keys := a.Keys()
	for _, chain := range cs.VerifiedChains {
		anchor := chain[len(chain)-1]
		for _, d := range keys.DeviceCAs {
			if d.Cert.Equal(anchor) {
				return cs.PeerCertificates[0], true
			}
		}
	}
	return nil, false
}
