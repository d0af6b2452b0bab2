package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
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
func (s *Snapshot) Check(leaf *x509.Certificate, trustDomain, permission string, now time.Time) (Grant, Reason) {
	return s.checkPeer(newPeer(leaf, trustDomain), permission, now)
}

// checkPeer is Check for an already parsed certificate.
func (s *Snapshot) checkPeer(p *peer, permission string, now time.Time) (Grant, Reason) {
	g, reason := s.identifyPeer(p, now)
	if !reason.Allowed() {
		return g, reason
	}
	if !s.subs[g.Principal.SubID].perms[permission] {
		return g, ReasonNoPermission
	}
	return g, ReasonAllowed
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

// identifyPeer checks everything but the permission point.
func (s *Snapshot) identifyPeer(pe *peer, now time.Time) (Grant, Reason) {
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
	case sub.notVerified:
		return g, ReasonNotVerified
	case !sub.protected:
		return g, ReasonNotProtected
	case !sub.window.Contains(now):
		return g, ReasonOutsideWindow
	}
	return g, ReasonAllowed
}

// The decision every way into the gateway (net/http's ServeHTTP, the fast
// path, the whoami endpoint) takes, in one place.

// decide applies the high-risk rule: a fresh policy, a valid device
// certificate of an eligible sub-account with the permission, and an app
// session of the same sub-account. With header binding the app checks the
// signed identity against its own session instead.
func (g *Gateway) decide(ctx context.Context, u *upstream, p *peer, point string, session sessionInput) (Grant, Reason) {
	grant, reason, _ := g.checkFresh(ctx, func(s *Snapshot, now time.Time) (Grant, Reason) {
		grant, reason := s.checkPeer(p, point, now)
		return grant, g.unlessRetired(p, reason)
	})
	if !reason.Allowed() || u.mode == bindingHeader {
		return grant, reason
	}
	user, err := u.binder.User(ctx, session)
	switch {
	case errors.Is(err, errAmbiguousSession):
		return grant, ReasonAmbiguousSession
	case errors.Is(err, errNotLoggedIn):
		return grant, ReasonNotLoggedIn
	case err != nil:
		g.opts.Log.Warn("session check failed", "upstream", u.cfg.Name, "err", err)
		return grant, ReasonBindingFailed
	case user != grant.SubName:
		return grant, ReasonSessionMismatch
	}
	return grant, ReasonAllowed
}

// identifyFresh checks everything but a permission point and a session:
// the login page and the whoami endpoint ask only who the certificate
// speaks for. It returns the snapshot it decided on.
func (g *Gateway) identifyFresh(ctx context.Context, p *peer) (Grant, Reason, *Snapshot) {
	return g.checkFresh(ctx, func(s *Snapshot, now time.Time) (Grant, Reason) {
		grant, reason := s.identifyPeer(p, now)
		return grant, g.unlessRetired(p, reason)
	})
}

// unlessRetired refuses a certificate whose device intermediate was
// retired after the connection's handshake (new handshakes refuse it
// already): a rotation's end applies to open connections too.
func (g *Gateway) unlessRetired(p *peer, reason Reason) Reason {
	if reason.Allowed() && g.opts.DeviceCAs != nil && g.opts.DeviceCAs.issuedByRetired(p.leaf) {
		return ReasonIssuerRetired
	}
	return reason
}

// onDemandSyncTimeout bounds the policy sync a request may wait for (a
// store or CA feed that does not answer must not hold requests).
const onDemandSyncTimeout = 2 * time.Second

// checkFresh runs check on the current snapshot, refusing when no policy
// is fresh enough. A device the snapshot does not know may have been
// enrolled a moment ago: it looks again after an on-demand sync.
func (g *Gateway) checkFresh(ctx context.Context, check func(*Snapshot, time.Time) (Grant, Reason)) (Grant, Reason, *Snapshot) {
	now := g.opts.Now()
	if g.opts.Policy.Staleness(now) > g.opts.MaxStaleness {
		return Grant{}, ReasonPolicyStale, nil
	}
	snap := g.opts.Policy.Snapshot()
	grant, reason := check(snap, now)
	if reason == ReasonUnknownDevice {
		ctx, cancel := context.WithTimeout(ctx, onDemandSyncTimeout)
		g.opts.Policy.SyncIfOlder(ctx)
		cancel()
		snap = g.opts.Policy.Snapshot()
		grant, reason = check(snap, now)
	}
	return grant, reason, snap
}
