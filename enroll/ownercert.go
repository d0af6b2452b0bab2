package enroll

import (
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// Why an owner request was refused for its certificate (message keys).
const (
	ownerCertMissing = "owner_cert_missing" // no certificate on this connection
	ownerCertOther   = "owner_cert_other"   // not an owner certificate of this store (staff, other store)
	ownerCertRevoked = "owner_cert_revoked" // revoked or superseded
	ownerCertExpired = "owner_cert_expired"
)

// ownerCertOf checks the request's client certificate, per request: it
// must be signed by one of the device intermediates (Options.DeviceCAs),
// within its dates by the portal's clock, and be the certificate of an
// active, unexpired device of tenantID's owner sub-account, with the
// serial the store has for that device. The owner-console listener asks
// for a certificate without judging it, so that an expired or foreign one
// gets this refusal, not a TLS error; the staff portal's listener never
// asks, so its connections have none. refusal is a message key; err is a
// store failure (refuse: fail closed).
func (p *Portal) ownerCertOf(r *http.Request, tenantID string) (dev store.Device, refusal string, err error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return store.Device{}, ownerCertMissing, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	now := p.opts.Now()
	// Checked here, not only at the handshake: a keep-alive connection
	// may outlive the certificate.
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return store.Device{}, ownerCertExpired, nil
	}
	var deviceCAs *x509.CertPool
	if p.opts.DeviceCAs != nil {
		deviceCAs = p.opts.DeviceCAs()
	}
	if deviceCAs == nil {
		return store.Device{}, ownerCertOther, nil // nothing to judge it by
	}
	// Signed by a device intermediate itself (they sign no CAs): the
	// chain the client sent is not needed.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: deviceCAs, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return store.Device{}, ownerCertOther, nil
	}
	who, err := identity.FromCertificate(leaf, p.opts.TrustDomain)
	if err != nil || who.TenantID != tenantID {
		return store.Device{}, ownerCertOther, nil
	}
	owner, err := p.opts.Store.OwnerAccount(r.Context(), tenantID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, ownerCertOther, nil
	}
	if err != nil {
		return store.Device{}, "", err
	}
	if who.SubID != owner.ID {
		return store.Device{}, ownerCertOther, nil
	}
	dev, err = p.opts.Store.GetDevice(r.Context(), tenantID, who.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, ownerCertOther, nil
	}
	if err != nil {
		return store.Device{}, "", err
	}
	switch {
	case dev.SubID != owner.ID:
		return store.Device{}, ownerCertOther, nil
	case dev.Status != store.DeviceActive || dev.Serial != leaf.SerialNumber.Text(16):
		return store.Device{}, ownerCertRevoked, nil // a renewal supersedes the old serial
	case !dev.ActiveAt(now):
		return store.Device{}, ownerCertExpired, nil
	}
	return dev, "", nil
}

// ownerCertGate lets an owner request through when the store does not
// require the owner's certificate, or when the request carries a valid
// one (ownerCertOf). A refusal is audited and answered with a page that
// names the owner console's address.
func (p *Portal) ownerCertGate(next sessionHandler) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		t, err := p.opts.Store.GetTenant(r.Context(), s.tenantID)
		if err != nil {
			p.opts.Log.Error("owner certificate check: read store", "err", err)
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
		if !t.OwnerCertRequired {
			next(w, r, s)
			return
		}
		_, refusal, err := p.ownerCertOf(r, s.tenantID)
		if err != nil {
			p.opts.Log.Error("owner certificate check", "err", err)
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
		if refusal != "" {
			p.refuseOwnerCert(w, r, s, refusal)
			return
		}
		next(w, r, s)
	}
}

// refuseOwnerCert audits and answers an owner request without a valid
// owner certificate (JSON for the page script's API, else a page).
func (p *Portal) refuseOwnerCert(w http.ResponseWriter, r *http.Request, s *session, refusal string) {
	a := actor(r, s)
	if _, err := p.opts.Store.AppendAudit(r.Context(), s.tenantID, store.AuditEntry{Time: p.opts.Now(), Actor: a,
		Action: "owner.cert_refused", Target: s.name, Outcome: "denied",
		Detail: map[string]string{"reason": refusal, "route": r.Pattern}}); err != nil {
		p.opts.Log.Error("audit write failed", "action", "owner.cert_refused", "err", err)
	}
	if isPageAPI(r) {
		writeError(w, http.StatusForbidden, refusal, p.pages.texts["en"][refusal], p.pages.texts["zh"][refusal])
		return
	}
	p.render(w, r, http.StatusForbidden, "owner_cert_refused", view{Error: p.text(r, refusal),
		Data: ownerRefusedData{ConsoleURL: p.opts.OwnerConsoleURL}})
}

type ownerRefusedData struct{ ConsoleURL string }
