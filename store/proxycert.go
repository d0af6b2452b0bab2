package store

import (
	"errors"
	"slices"
	"time"
)

// ErrProxyInactive refuses a proxy certificate that is unknown, revoked or
// expired.
var ErrProxyInactive = errors.New("proxy certificate is unknown, revoked or expired")

// ProxyCert is a client certificate the CA issued to a proxy node for its
// policy feed and uploads. The store's record, not the certificate, is
// authoritative: a revocation or scope recorded here takes effect on the
// proxy's next request.
type ProxyCert struct {
	Name        string // the node, as in its URI SAN spiffe://<td>/proxy/<name>
	Serial      string // lower-case hex
	Fingerprint string // SHA-256 of the DER, hex
	Scope       ProxyScope
	IssuedAt    time.Time
	NotAfter    time.Time
	RevokedAt   time.Time // zero: not revoked
	Reason      RevocationReason
	RenewedFrom string // serial of the certificate it renewed ("" if issued anew)
}

// ProxyScope is which stores a proxy may read and write for: every store
// (All, only when asked for explicitly) or the listed tenant ids.
type ProxyScope struct {
	All    bool
	Stores []string // tenant ids, sorted, without duplicates
}

// Allows reports whether the scope covers tenantID.
func (s ProxyScope) Allows(tenantID string) bool {
	if s.All {
		return true
	}
	_, found := slices.BinarySearch(s.Stores, tenantID)
	return found && tenantID != ""
}

// ActiveAt reports whether the certificate is usable at now: recorded,
// not revoked, within its validity.
func (p ProxyCert) ActiveAt(now time.Time) bool {
	return p.RevokedAt.IsZero() && now.Before(p.NotAfter)
}
