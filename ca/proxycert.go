package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// ProxyCertValidity is the lifetime of a proxy's feed client certificate:
// short, because a copied proxy key reads policy until it is revoked or
// expires. The edge proxy renews its own at two thirds of it.
const ProxyCertValidity = 7 * 24 * time.Hour

// ProxyRenewFrom is how much of its life a proxy certificate must have
// lived before it may be renewed: a stolen key cannot mint a chain of
// fresh certificates faster than one per half-life.
const ProxyRenewFrom = ProxyCertValidity / 2

// IssueProxyCert signs a client certificate with the "proxy" role for the
// policy feed and records it with its store scope. The record is what the
// feed checks on every request; a certificate that could not be recorded
// is never returned (and would be refused anyway).
func (a *Authority) IssueProxyCert(ctx context.Context, name string, scope store.ProxyScope, csrData []byte) ([]*x509.Certificate, error) {
	if err := identity.ValidateProxyName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	if !scope.All && len(scope.Stores) == 0 {
		return nil, fmt.Errorf("%w: a proxy certificate needs a store scope (store ids, or every store explicitly)", store.ErrInvalid)
	}
	return a.signProxy(ctx, name, csrData, store.ProxyCert{Name: name, Scope: scope})
}

// RenewProxyCert gives the proxy that authenticated with cur a new
// certificate of the same name and scope. cur must be recorded, active and
// past ProxyRenewFrom.
func (a *Authority) RenewProxyCert(ctx context.Context, cur store.ProxyCert, csrData []byte) ([]*x509.Certificate, error) {
	now := a.now()
	if !cur.ActiveAt(now) {
		return nil, store.ErrProxyInactive
	}
	if from := cur.IssuedAt.Add(ProxyRenewFrom); now.Before(from) {
		return nil, fmt.Errorf("%w: a proxy certificate may be renewed from %s on", errBadRequest, from.UTC().Format(time.RFC3339))
	}
	return a.signProxy(ctx, cur.Name, csrData, store.ProxyCert{RenewedFrom: cur.Serial})
}

func (a *Authority) signProxy(ctx context.Context, name string, csrData []byte, rec store.ProxyCert) ([]*x509.Certificate, error) {
	csr, err := ParseCSR(csrData, a.opts.AllowRSA)
	if err != nil {
		return nil, err
	}
	now := a.now()
	chain, err := a.cur.Load().signer.sign(ctx, csr, leafSpec{
		CommonName: "proxy:" + name,
		URI:        identity.ProxyURI(a.opts.TrustDomain, name).String(),
		NotBefore:  now.Add(-time.Minute),
		NotAfter:   now.Add(ProxyCertValidity),
	})
	if err != nil {
		return nil, err
	}
	rec.Serial, rec.Fingerprint, rec.IssuedAt, rec.NotAfter = SerialHex(chain[0]), Fingerprint(chain[0]), now, chain[0].NotAfter
	if _, err := a.store.RecordProxyCert(ctx, rec); err != nil {
		return nil, err
	}
	return chain, nil
}

// RevokeProxy revokes a proxy certificate by serial, or every certificate
// of a proxy by name. The proxy is refused on its next request, its open
// feed requests are cut, and the serials go on the CRL.
func (a *Authority) RevokeProxy(ctx context.Context, nameOrSerial string, reason store.RevocationReason) ([]store.ProxyCert, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	revoked, err := a.store.RevokeProxyCerts(ctx, nameOrSerial, reason, a.now())
	if err != nil {
		return nil, err
	}
	a.afterRevocation(ctx)
	return revoked, nil
}
