package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

// caIssuer is the in-process CA as the portal's Issuer: the same Issue and
// revocation paths as the CA's API and the admin CLI.
type caIssuer struct{ a *ca.Authority }

func (c caIssuer) Issue(ctx context.Context, r enroll.IssueRequest) (enroll.Issued, error) {
	is, err := c.a.Issue(ctx, ca.IssueRequest{TenantID: r.TenantID, SubID: r.SubID, CSR: r.CSR, Label: r.Label,
		ClientIP: r.ClientIP, UA: r.UA})
	if err != nil {
		return enroll.Issued{}, refusal(err)
	}
	return portalIssued(is), nil
}

func (c caIssuer) Renew(ctx context.Context, r enroll.RenewRequest) (enroll.Issued, error) {
	is, err := c.a.RenewForSession(ctx, ca.SessionRenewal{TenantID: r.TenantID, SubID: r.SubID, DeviceID: r.DeviceID,
		CSR: r.CSR, ClientIP: r.ClientIP, UA: r.UA})
	if err != nil {
		return enroll.Issued{}, refusal(err)
	}
	return portalIssued(is), nil
}

// portalIssued is what the browser needs of an issued certificate.
func portalIssued(is *ca.Issued) enroll.Issued {
	out := enroll.Issued{Device: is.Device, Installed: is.Installed, Limit: is.Limit, CertPEM: pemOf(is.Chain[0])}
	for _, c := range is.Chain[1:] {
		out.ChainPEM = append(out.ChainPEM, pemOf(c))
	}
	return out
}

func (c caIssuer) RevokeDevice(ctx context.Context, tenantID, deviceID string, actor store.Actor) error {
	_, err := c.a.RevokeDevice(ctx, tenantID, deviceID, store.ReasonPrivilegeWithdrawn, actor)
	return refusal(err)
}

func (c caIssuer) RevokeSubAccount(ctx context.Context, tenantID, subID string, actor store.Actor) error {
	_, err := c.a.RevokeSubAccount(ctx, tenantID, subID, store.ReasonPrivilegeWithdrawn, actor)
	return refusal(err)
}

func (c caIssuer) SetStatus(ctx context.Context, tenantID, subID string, status store.SubStatus, actor store.Actor) error {
	_, _, err := c.a.SetStatus(ctx, tenantID, subID, status, actor)
	return refusal(err)
}

// refusal turns the caller's mistakes (quota, bad CSR, not eligible) into
// the portal's user-facing error with the CA's messages; internal errors
// stay as they are (logged, never shown).
func refusal(err error) error {
	if err == nil {
		return nil
	}
	e := ca.Explain(err)
	if e.Status >= 500 {
		return err
	}
	return errors.Join(&e, err)
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// startPortal binds the portal's HTTPS listener; the handler is built by
// portalHandler once the proxy's address is known.
func (a *app) startPortal(ctx context.Context, log *slog.Logger) (*server, error) {
	tc, err := a.serverTLS(ctx)
	if err != nil {
		return nil, err
	}
	return listen("portal", a.cfg.Portal.Listen, nil, tc, log)
}

// startOwnerConsole binds the owner console's own HTTPS listener
// (portal.owner_listen; nil when not configured). Its handshake asks for a
// device certificate without requiring one; the portal checks per request
// that it is a valid one of the owner's own (enroll/ownercert.go). The staff listener never asks, so no
// staff browser sees a certificate picker (docs/lifecycle.md).
func (a *app) startOwnerConsole(ctx context.Context, log *slog.Logger) (*server, error) {
	if a.cfg.Portal.OwnerListen == "" {
		return nil, nil
	}
	tc, err := a.serverTLS(ctx)
	if err != nil {
		return nil, err
	}
	// Asked for, naming the device intermediates, but judged by the portal
	// per request: an expired or foreign certificate gets the refusal page
	// with the way back, not a TLS error.
	tc.ClientAuth = tls.RequestClientCert
	tc.MinVersion = tls.VersionTLS12
	a.ca.FollowDeviceCAs(tc) // a rotation picked up by the CA applies at the next handshake
	return listen("owner console", a.cfg.Portal.OwnerListen, nil, tc, log)
}

// ownerConsoleURL is the owner console's address as browsers reach it.
func (a *app) ownerConsoleURL(owner *server) string {
	switch {
	case owner == nil:
		return ""
	case a.cfg.Portal.OwnerURL != "":
		return strings.TrimSuffix(a.cfg.Portal.OwnerURL, "/")
	}
	return owner.URL()
}

// portalHandler is the owner console and staff enrollment page.
func (a *app) portalHandler(proxyURL, ownerURL string, log *slog.Logger) (*enroll.Portal, error) {
	key, err := secrets.LoadOrCreateKey(filepath.Join(a.cfg.DataDir, "portal-cookie.key"))
	if err != nil {
		return nil, err
	}
	var callbackKey []byte // nil: the identity provider's callback is off
	if f := a.cfg.Portal.VerifyCallbackKeyFile; f != "" {
		if callbackKey, err = secrets.LoadKey(f); err != nil {
			return nil, fmt.Errorf("portal.verify_callback_key_file: %w", err)
		}
	}
	return enroll.New(enroll.Options{Store: a.store, Issuer: caIssuer{a.ca}, Catalog: a.catalog, ProxyURL: proxyURL,
		CookieKey: key, Log: log, Now: clockNow(), VerifyCallbackKey: callbackKey, TrustDomain: a.cfg.CA.TrustDomain,
		DeviceCAs: func() *x509.CertPool { return a.ca.Keys().DevicePool() }, OwnerConsoleURL: ownerURL})
}

// servePortal gives the portal's listeners (the owner console's may be
// nil) the handler and returns their serve functions.
func servePortal(h http.Handler, portal, owner *server) []func(context.Context) error {
	portal.srv.Handler = h
	if owner == nil {
		return []func(context.Context) error{portal.serve}
	}
	owner.srv.Handler = h
	return []func(context.Context) error{portal.serve, owner.serve}
}
