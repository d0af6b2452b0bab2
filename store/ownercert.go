package store

import (
	"context"
	"time"
)

// OwnerCerts is the store owner's own device certificates (issue 13 item
// 4, seed 000: the main account installs a certificate too). The owner's
// computers are the devices of one hidden sub-account per store (Owner
// true, name ""): the quota (N of MaxDevicesLimit), issuance, renewal,
// revocation, CRL and OCSP are the sub-accounts' own code, unchanged.
// ListSubAccounts and GetSubAccountByName never return it.
type OwnerCerts interface {
	// OwnerAccount is the store's owner sub-account; ErrNotFound until
	// EnsureOwnerAccount made it.
	OwnerAccount(ctx context.Context, tenantID string) (SubAccount, error)
	// EnsureOwnerAccount returns the owner sub-account, making it on first
	// use (audited "owner.account"): active, phone verified (the owner's
	// login TOTP), certificate protection on with one computer.
	EnsureOwnerAccount(ctx context.Context, tenantID string, actor Actor) (SubAccount, error)
	// SetOwnerCertRequired turns the requirement on or off, audited
	// "owner.cert_required". Turning it on while the owner has no active
	// device at now is refused (*NotEligibleError "no_owner_device"), so
	// the setting never locks out an owner without a certificate.
	SetOwnerCertRequired(ctx context.Context, tenantID string, on bool, now time.Time, actor Actor) (Tenant, error)
}

// OwnerSubName is the owner sub-account's name: no valid sub-account name
// is empty, so no staff account can take it.
const OwnerSubName = ""
