package ca

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
)

// ProxyCertValidity is the lifetime of a proxy's feed client certificate.
const ProxyCertValidity = 90 * 24 * time.Hour

// IssueProxyCert signs a client certificate with the "proxy" role that
// lets a proxy node read the revocation feed.
func (a *Authority) IssueProxyCert(ctx context.Context, name string, csrData []byte) ([]*x509.Certificate, error) {
	if err := identity.ValidateProxyName(name); err != nil {
		return nil, err
	}
	csr, err := ParseCSR(csrData, a.opts.AllowRSA)
	if err != nil {
		return nil, err
	}
	now := a.now()
	return a.signer.sign(ctx, csr, leafSpec{
		CommonName: "proxy:" + name,
		URI:        identity.ProxyURI(a.opts.TrustDomain, name).String(),
		NotBefore:  now.Add(-time.Minute),
		NotAfter:   now.Add(ProxyCertValidity),
	})
}
