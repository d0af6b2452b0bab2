package enroll

import (
	"context"

	"github.com/devicegate/devicegate/store"
)

// Issuer is the CA as the portal sees it: the same code path as the CA's
// POST /v1/enroll (quota gate, signing) and its revocations (CRL, proxy
// notification). cmd/devicegate adapts the in-process authority to it, so
// this package never imports the CA.
type Issuer interface {
	Issue(ctx context.Context, r IssueRequest) (Issued, error)
	RevokeDevice(ctx context.Context, tenantID, deviceID string, actor store.Actor) error
	RevokeSubAccount(ctx context.Context, tenantID, subID string, actor store.Actor) error
	SetStatus(ctx context.Context, tenantID, subID string, status store.SubStatus, actor store.Actor) error
	// Renew gives a device of the session's own sub-account a certificate
	// for a key made in the browser: same device, same slot, under the CA's
	// renewal rules.
	Renew(ctx context.Context, r RenewRequest) (Issued, error)
}

// RenewRequest is a browser renewal of one of the session's own devices.
type RenewRequest struct {
	TenantID, SubID, DeviceID string
	CSR                       []byte // PEM PKCS#10 built in the browser
	ClientIP, UA              string
}

// IssueRequest is a browser enrollment of the session's own sub-account.
type IssueRequest struct {
	TenantID, SubID string
	CSR             []byte // PEM PKCS#10 built in the browser
	Label           string
	ClientIP, UA    string
}

// Issued is what the browser needs to pack the PKCS#12.
type Issued struct {
	Device    store.Device
	CertPEM   string
	ChainPEM  []string // intermediates, leaf excluded
	Installed int
	Limit     int
}

// An Issuer returns an *api.Error for everything that is the caller's
// fault (quota, bad CSR, not eligible): an HTTP status, a stable code and
// the message in both languages, which the portal shows as it is.
