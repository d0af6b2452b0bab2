package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// IssueRequest asks for a device certificate. The sub-account comes from a
// one-time Code (API and CLI) or from an authenticated portal session
// (TenantID+SubID); never from the CSR.
type IssueRequest struct {
	Code     string
	TenantID string
	SubID    string
	CSR      []byte // PEM or DER PKCS#10
	Label    string
	ClientIP string
	UA       string
}

// Issued is a freshly issued device certificate.
type Issued struct {
	Device     store.Device
	SubAccount store.SubAccount
	Chain      []*x509.Certificate // leaf, device intermediate
	Installed  int                 // active devices after this one
	Limit      int                 // N
	// Redelivered: the certificate was recorded by an earlier request
	// whose answer was lost, and is handed out again unchanged.
	Redelivered bool
}

// MaxLabelRunes bounds a device label.
const MaxLabelRunes = 64

// Issue checks the CSR and the sub-account, signs, and records the device
// through the store's quota gate. Signing happens before the transaction
// (so the write lock is held for microseconds, not for an ECDSA signature);
// a certificate refused by the gate is dropped and never leaves this
// function.
func (a *Authority) Issue(ctx context.Context, r IssueRequest) (issued *Issued, err error) {
	defer func() { a.countIssue(err) }()
	csr, err := parseCSRUnverified(r.CSR, a.opts.AllowRSA)
	if err != nil {
		return nil, err
	}
	label, err := cleanLabel(r.Label)
	if err != nil {
		return nil, err
	}
	now := a.now()

	var ticketHash []byte
	tenantID, subID := r.TenantID, r.SubID
	if r.Code != "" {
		if ticketHash, err = hashCode(r.Code); err != nil {
			return nil, store.ErrTicketUnknown
		}
	} else if tenantID == "" || subID == "" {
		return nil, fmt.Errorf("%w: an enrollment code is required", store.ErrTicketUnknown)
	}
	// Ticket, sub-account and the cheap quota pre-check in one read, so a
	// full quota costs no signature; the store's transaction below is the
	// authoritative check.
	pre, err := a.store.IssuePrecheck(ctx, ticketHash, tenantID, subID, now)
	if ticketHash != nil {
		t := pre.Ticket
		if err != nil && !errors.Is(err, store.ErrTicketUsed) {
			return nil, err
		}
		// A session-bound caller may also pass a code: it must be theirs.
		if (tenantID != "" && tenantID != t.TenantID) || (subID != "" && subID != t.SubID) {
			return nil, store.ErrTicketUnknown
		}
		tenantID, subID = t.TenantID, t.SubID
		if err != nil {
			// Used: the answer to the request that used it may have been
			// lost. Only the device it issued, for this very key, comes back.
			return a.redeliver(ctx, r, csr, tenantID, subID, t.UsedAt.Add(-time.Second), t.UsedAt.Add(time.Second), now, err)
		}
	} else if err != nil {
		return nil, err
	}
	sub, active := pre.SubAccount, pre.Active
	notAfter, err := a.eligibleUntil(sub, now)
	if err != nil {
		return nil, err
	}
	if active >= sub.Protection.MaxDevices {
		// The store checks the key before the quota: a key that holds a
		// device of this sub-account is a re-delivery, not a full quota.
		return a.redeliverRecent(ctx, r, csr, tenantID, subID, now, store.ErrQuotaExceeded)
	}

	deviceID := store.NewID()
	p := identity.Principal{TrustDomain: a.opts.TrustDomain, TenantID: tenantID, SubID: subID, DeviceID: deviceID}
	cur := a.cur.Load()
	chain, err := cur.signer.sign(ctx, csr, a.deviceLeaf(cur.keys, sub, p, now, notAfter))
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	dev, installed, err := a.store.IssueDevice(ctx, store.IssueRequest{
		TenantID:    tenantID,
		SubID:       subID,
		TicketHash:  ticketHash,
		DeviceID:    deviceID,
		Label:       label,
		Serial:      SerialHex(leaf),
		Fingerprint: Fingerprint(leaf),
		KeyID:       KeyID(leaf),
		CertDER:     leaf.Raw,
		IssuedAt:    now,
		ExpiresAt:   leaf.NotAfter,
		EnrolledIP:  r.ClientIP,
		EnrolledUA:  truncate(r.UA, 256),
		Now:         now,
	}, store.Actor{Kind: "sub", Name: sub.FullName(), IP: r.ClientIP, UA: truncate(r.UA, 256)})
	switch {
	case errors.Is(err, store.ErrKeyInUse) || errors.Is(err, store.ErrQuotaExceeded) ||
		errors.Is(err, store.ErrTicketUsed): // used: by a concurrent request between the look-up and now
		return a.redeliverRecent(ctx, r, csr, tenantID, subID, now, err)
	case err != nil:
		return nil, err
	}
	return &Issued{Device: dev, SubAccount: sub, Chain: chain, Installed: installed, Limit: sub.Protection.MaxDevices}, nil
}

// redeliverRecent is redeliver for a device issued within the ticket TTL
// before now.
func (a *Authority) redeliverRecent(ctx context.Context, r IssueRequest, csr *x509.CertificateRequest, tenantID, subID string, now time.Time, refusal error) (*Issued, error) {
	return a.redeliver(ctx, r, csr, tenantID, subID, now.Add(-a.opts.TicketTTL), now, now, refusal)
}

// redeliver answers a request refused with refusal (its code used, its key
// in use) with the certificate already recorded for it, when the answer to
// the request that recorded it was lost (the CA died, the connection was
// cut): the active device of this sub-account that holds the CSR's key,
// issued within [from, to] and never seen at a proxy. The CSR's signature
// proves the caller holds the key, so a used code alone gets nothing, and
// the key alone already has the certificate's power. Nothing is signed,
// no slot taken, no serial revoked; the store audits device.redelivered.
// Anything else keeps the refusal.
func (a *Authority) redeliver(ctx context.Context, r IssueRequest, csr *x509.CertificateRequest, tenantID, subID string, from, to, now time.Time, refusal error) (*Issued, error) {
	if csr.CheckSignature() != nil {
		return nil, refusal
	}
	sub, err := a.store.GetSubAccount(ctx, tenantID, subID)
	if err != nil {
		return nil, refusal
	}
	if from.Before(now.Add(-a.opts.TicketTTL)) {
		from = now.Add(-a.opts.TicketTTL)
	}
	if to.Before(from) {
		return nil, refusal
	}
	dev, der, err := a.store.RedeliverDevice(ctx, store.RedeliverRequest{
		TenantID: tenantID, SubID: subID, KeyID: keyIDOf(csr.RawSubjectPublicKeyInfo),
		IssuedFrom: from, IssuedTo: to, Now: now,
	}, store.Actor{Kind: "sub", Name: sub.FullName(), IP: r.ClientIP, UA: truncate(r.UA, 256)})
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.opts.Logger.Warn("re-delivering a device certificate failed", "err", err)
		}
		return nil, refusal
	}
	leaf, err := x509.ParseCertificate(der)
	var issuer *DeviceCA
	if err == nil {
		issuer = a.Keys().issuerOf(leaf)
	}
	if issuer == nil || SerialHex(leaf) != dev.Serial {
		a.opts.Logger.Error("a recorded device certificate does not check; not re-delivered", "device", dev.ID)
		return nil, refusal
	}
	installed, err := a.store.CountActiveDevices(ctx, tenantID, subID, now)
	if err != nil {
		return nil, refusal
	}
	return &Issued{Device: dev, SubAccount: sub, Chain: []*x509.Certificate{leaf, issuer.Cert}, Installed: installed,
		Limit: sub.Protection.MaxDevices, Redelivered: true}, nil
}

// Renew gives an active device a new certificate (same device id, same
// quota slot) and revokes the old serial as superseded. The caller has
// authenticated the device with its current certificate, oldLeaf. Only a
// certificate near its end renews, at most maxRenewals times a day.
func (a *Authority) Renew(ctx context.Context, oldLeaf *x509.Certificate, csrData []byte) (*Issued, error) {
	p, err := identity.FromCertificate(oldLeaf, a.opts.TrustDomain)
	if err != nil {
		return nil, err
	}
	// The signer verifies the CSR's signature (ErrCSRSignature) before it
	// signs; nothing before it writes.
	csr, err := parseCSRUnverified(csrData, a.opts.AllowRSA)
	if err != nil {
		return nil, err
	}
	return a.renew(ctx, p, SerialHex(oldLeaf), csr, IssueRequest{})
}

// SessionRenewal is a renewal asked for in the portal by the logged-in
// sub-account itself, for one of its devices, with a key made in the
// browser (the browser cannot use the old key: it stays in its store).
type SessionRenewal struct {
	TenantID, SubID, DeviceID string
	CSR                       []byte
	ClientIP, UA              string
}

// RenewForSession renews a device of the session's own sub-account under
// the same rules as Renew (near its end or allowed by the owner, at most
// maxRenewals a day, same slot, old serial superseded). The retry of a
// renewal whose answer was lost (same CSR key, within
// renewalRedeliveryWindow) gets the recorded certificate again.
func (a *Authority) RenewForSession(ctx context.Context, r SessionRenewal) (*Issued, error) {
	csr, err := parseCSRUnverified(r.CSR, a.opts.AllowRSA)
	if err != nil {
		return nil, err
	}
	now := a.now()
	if again, err := a.redeliver(ctx, IssueRequest{ClientIP: r.ClientIP, UA: r.UA}, csr, r.TenantID, r.SubID,
		now.Add(-renewalRedeliveryWindow), now, now, store.ErrNotFound); err == nil && again.Device.ID == r.DeviceID {
		return again, nil
	}
	dev, err := a.store.GetDevice(ctx, r.TenantID, r.DeviceID)
	if err != nil {
		return nil, err
	}
	if dev.SubID != r.SubID {
		return nil, store.ErrNotFound // another sub-account's device: as if it did not exist
	}
	p := identity.Principal{TrustDomain: a.opts.TrustDomain, TenantID: r.TenantID, SubID: r.SubID, DeviceID: dev.ID}
	return a.renew(ctx, p, dev.Serial, csr, IssueRequest{ClientIP: r.ClientIP, UA: r.UA})
}

// renew is the one renewal path: p's device, whose current serial the
// caller named, gets a certificate for the CSR's key (parsed, its
// signature checked by the signer).
func (a *Authority) renew(ctx context.Context, p identity.Principal, oldSerial string, csr *x509.CertificateRequest, from IssueRequest) (*Issued, error) {
	now := a.now()
	dev, err := a.store.GetDevice(ctx, p.TenantID, p.DeviceID)
	if err != nil {
		return nil, err
	}
	if dev.SubID != p.SubID || dev.Serial != oldSerial {
		return nil, store.ErrStale
	}
	if !dev.ActiveAt(now) {
		return nil, store.ErrDeviceInactive
	}
	if err := a.checkRenewal(ctx, dev, now); err != nil {
		return nil, err
	}
	sub, err := a.store.GetSubAccount(ctx, p.TenantID, p.SubID)
	if err != nil {
		return nil, err
	}
	notAfter, err := a.eligibleUntil(sub, now)
	if err != nil {
		return nil, err
	}
	cur := a.cur.Load()
	chain, err := cur.signer.sign(ctx, csr, a.deviceLeaf(cur.keys, sub, p, now, notAfter))
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	dev, _, err = a.store.RenewDevice(ctx, store.RenewRequest{
		TenantID:    p.TenantID,
		DeviceID:    p.DeviceID,
		OldSerial:   dev.Serial,
		Serial:      SerialHex(leaf),
		Fingerprint: Fingerprint(leaf),
		KeyID:       KeyID(leaf),
		CertDER:     leaf.Raw,
		IssuedAt:    now,
		ExpiresAt:   leaf.NotAfter,
		Now:         now,
	}, store.Actor{Kind: "sub", Name: sub.FullName(), IP: from.ClientIP, UA: truncate(from.UA, 256)})
	if err != nil {
		return nil, err
	}
	a.countRenewal(ctx, dev, now)
	a.afterRevocation(ctx)
	installed, _ := a.store.CountActiveDevices(ctx, p.TenantID, p.SubID, now) // for the answer only: the renewal is done
	return &Issued{Device: dev, SubAccount: sub, Chain: chain, Installed: installed, Limit: sub.Protection.MaxDevices}, nil
}

// renewalRedeliveryWindow is how long after a renewal its certificate is
// handed out again to a caller whose answer was lost.
const renewalRedeliveryWindow = 10 * time.Minute

// RedeliverRenewal answers the retry of a renewal whose answer was lost:
// the renewal already superseded oldLeaf, so the caller authenticates with
// a revoked certificate. It gets the recorded certificate again only if it
// also proves, by the CSR's signature, that it holds the key that
// certificate certifies, and only within renewalRedeliveryWindow. Nothing is
// signed or revoked; the store audits device.redelivered.
func (a *Authority) RedeliverRenewal(ctx context.Context, oldLeaf *x509.Certificate, csrData []byte) (*Issued, error) {
	p, err := identity.FromCertificate(oldLeaf, a.opts.TrustDomain)
	if err != nil {
		return nil, err
	}
	csr, err := parseCSRUnverified(csrData, a.opts.AllowRSA)
	if err != nil {
		return nil, err
	}
	now := a.now()
	issued, err := a.redeliver(ctx, IssueRequest{}, csr, p.TenantID, p.SubID, now.Add(-renewalRedeliveryWindow), now, now, store.ErrDeviceInactive)
	if err != nil || issued.Device.ID != p.DeviceID {
		return nil, store.ErrDeviceInactive
	}
	return issued, nil
}

// deviceLeaf is what a device certificate of sub issued now says: its
// identity, its validity and where its revocation is published.
func (a *Authority) deviceLeaf(keys *Keys, sub store.SubAccount, p identity.Principal, now, notAfter time.Time) leafSpec {
	spec := leafSpec{
		CommonName: sub.FullName(),
		URI:        p.URI().String(),
		NotBefore:  now.Add(-time.Minute), // tolerate small client clock skew
		NotAfter:   notAfter,
	}
	if base := strings.TrimSuffix(a.opts.PublicURL, "/"); base != "" {
		spec.CRLURL, spec.OCSPURL = base+keys.crlPath(), base+"/ocsp"
	}
	return spec
}

// eligibleUntil is the NotAfter of a certificate issued to sub now (the
// configured validity, capped by the sub-account's window), or why sub may
// not have one.
func (a *Authority) eligibleUntil(sub store.SubAccount, now time.Time) (time.Time, error) {
	notAfter := now.Add(a.opts.Validity)
	if !sub.Window.NotAfter.IsZero() && sub.Window.NotAfter.Before(notAfter) {
		notAfter = sub.Window.NotAfter
	}
	return notAfter, store.Eligible(sub, now, notAfter)
}

// RevokeDevice revokes one device and publishes it (afterRevocation).
func (a *Authority) RevokeDevice(ctx context.Context, tenantID, deviceID string, reason store.RevocationReason, actor store.Actor) (store.Revocation, error) {
	if err := checkReason(reason); err != nil {
		return store.Revocation{}, err
	}
	rv, err := a.store.RevokeDevice(ctx, tenantID, deviceID, reason, actor)
	if err != nil {
		return store.Revocation{}, err
	}
	a.afterRevocation(ctx)
	return rv, nil
}

// RevokeSubAccount revokes every active device of a sub-account.
func (a *Authority) RevokeSubAccount(ctx context.Context, tenantID, subID string, reason store.RevocationReason, actor store.Actor) ([]store.Revocation, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	rvs, err := a.store.RevokeSubAccountDevices(ctx, tenantID, subID, reason, actor)
	if err != nil {
		return nil, err
	}
	a.afterRevocation(ctx)
	return rvs, nil
}

// Depart marks a sub-account departed (revoking all its devices) or, with
// status active, restores it.
func (a *Authority) SetStatus(ctx context.Context, tenantID, subID string, status store.SubStatus, actor store.Actor) (store.SubAccount, []store.Revocation, error) {
	sub, rvs, err := a.store.SetStatus(ctx, tenantID, subID, status, actor)
	if err != nil {
		return sub, nil, err
	}
	a.afterRevocation(ctx)
	return sub, rvs, nil
}

// afterRevocation makes a revocation visible: OCSP and the feed at once;
// the CRL at once when no Run is active (a CLI process), else at Run's next
// tick, so a burst is signed once. The revocation is already durable; a
// failure here is logged and retried by Run.
func (a *Authority) afterRevocation(ctx context.Context) {
	if fn := a.onRevoke.Load(); fn != nil {
		(*fn)()
	}
	publish := a.revs.refresh
	if a.revs.running.Load() {
		publish = a.revs.sync
	}
	if err := publish(ctx); err != nil {
		a.opts.Logger.Error("publishing a revocation failed; retrying in the background", "err", err)
	}
}

func checkReason(r store.RevocationReason) error {
	switch r {
	case store.ReasonUnspecified, store.ReasonKeyCompromise, store.ReasonAffiliationChanged,
		store.ReasonSuperseded, store.ReasonCessationOfOperation, store.ReasonPrivilegeWithdrawn:
		return nil
	}
	return fmt.Errorf("%w: revocation reason %d is not supported", store.ErrInvalid, r)
}

// SerialHex is the store's form of a certificate serial number.
func SerialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// Fingerprint is the hex SHA-256 of the DER certificate.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// KeyID is the lower-case hex SHA-256 of the certificate's public key
// (SubjectPublicKeyInfo): the store lets one key pair hold one active
// device only.
func KeyID(c *x509.Certificate) string { return keyIDOf(c.RawSubjectPublicKeyInfo) }

// keyIDOf is the key id of a DER SubjectPublicKeyInfo (of a certificate or
// of a CSR: the same key gives the same id).
func keyIDOf(spki []byte) string {
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

func cleanLabel(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if err := identity.ValidateLabel(s); err != nil {
		return "", fmt.Errorf("%w: device label: %v", store.ErrInvalid, err)
	}
	return s, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
