package proxy

import (
	"crypto/x509"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// Reason codes shown on the refusal page and counted in metrics.
const (
	ReasonNoCertificate    = "no_certificate"
	ReasonBadIdentity      = "bad_identity"
	ReasonUnknownDevice    = "device_not_active" // revoked, superseded, or never issued
	ReasonExpired          = "certificate_expired"
	ReasonSubInactive      = "subaccount_inactive"
	ReasonNotProtected     = "protection_disabled"
	ReasonOutsideWindow    = "outside_validity_window"
	ReasonNoPermission     = "permission_denied"
	ReasonNotLoggedIn      = "not_logged_in"
	ReasonSessionMismatch  = "session_mismatch"
	ReasonAmbiguousSession = "ambiguous_session" // two session cookies, or a cookie and Authorization
	ReasonBindingFailed    = "session_check_failed"
	ReasonPolicyStale      = "policy_stale"
	ReasonCertificateValid = "ok"
)

// Grant is who a valid device certificate speaks for.
type Grant struct {
	Principal identity.Principal
	SubName   string // "store:name", from the store's records (not the CN)
}

// Check decides whether leaf may use permission at now: the serial must be
// the device's current one, the device active, the sub-account active,
// protected, inside its window and granted the permission point. It only
// reads the immutable snapshot.
func (s *Snapshot) Check(leaf *x509.Certificate, trustDomain, permission string, now time.Time) (Grant, string) {
	return s.checkPeer(newPeer(leaf, trustDomain), permission, now)
}

// checkPeer is Check for an already parsed certificate.
func (s *Snapshot) checkPeer(p *peer, permission string, now time.Time) (Grant, string) {
	g, reason := s.identifyPeer(p, now)
	if reason != ReasonCertificateValid {
		return g, reason
	}
	if !s.subs[g.Principal.SubID].perms[permission] {
		return g, ReasonNoPermission
	}
	return g, ReasonCertificateValid
}

// peer is a client certificate with its identity read once: a connection
// keeps its certificate, so the fast path parses it per connection, not
// per request.
type peer struct {
	leaf      *x509.Certificate // nil: no certificate
	principal identity.Principal
	err       error  // the identity could not be read
	serial    string // hex, as the store keeps it
}

func newPeer(leaf *x509.Certificate, trustDomain string) *peer {
	p := &peer{leaf: leaf}
	if leaf != nil {
		p.principal, p.err = identity.FromCertificate(leaf, trustDomain)
		p.serial = leaf.SerialNumber.Text(16)
	}
	return p
}

// identify checks everything but the permission point.
func (s *Snapshot) identify(leaf *x509.Certificate, trustDomain string, now time.Time) (Grant, string) {
	return s.identifyPeer(newPeer(leaf, trustDomain), now)
}

func (s *Snapshot) identifyPeer(pe *peer, now time.Time) (Grant, string) {
	if pe.leaf == nil {
		return Grant{}, ReasonNoCertificate
	}
	if pe.err != nil {
		return Grant{}, ReasonBadIdentity
	}
	p := pe.principal
	// From here on a refusal still names who was refused (the chain was
	// verified in the handshake), so it can be audited in that store.
	g := Grant{Principal: p, SubName: p.DisplayName}
	sub, known := s.subs[p.SubID]
	if known && sub.tenantID == p.TenantID {
		g.SubName = sub.fullName
	}
	dev, ok := s.devices[p.DeviceID]
	if !ok || dev.serial != pe.serial || dev.tenantID != p.TenantID || dev.subID != p.SubID {
		return g, ReasonUnknownDevice
	}
	if !now.Before(dev.expires) || !now.Before(pe.leaf.NotAfter) {
		return g, ReasonExpired
	}
	switch {
	case !known || sub.tenantID != p.TenantID || sub.status != store.StatusActive:
		return g, ReasonSubInactive
	case !sub.protected:
		return g, ReasonNotProtected
	case !sub.window.Contains(now):
		return g, ReasonOutsideWindow
	}
	return g, ReasonCertificateValid
}
