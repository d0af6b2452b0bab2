// Package store is devicegate's persistence boundary: tenants (stores),
// sub-accounts, devices, enrollment tickets, revocations and the audit log.
//
// Every method that touches tenant data takes the store (tenant) id and only
// ever sees that tenant's rows. Every mutating method writes its audit event
// in the same transaction, so a refused call changes nothing at all.
package store

import (
	"context"
	"time"
)

// Store is implemented by store/sqlite and store/postgres and checked by the
// shared conformance suite in store/storetest.
type Store interface {
	Verifications // real-person verification (verification.go)
	OwnerCerts    // the owner's own device certificates (ownercert.go)
	IssuerCounts  // active devices per device intermediate (deviceissuers.go)

	// Tenants.
	CreateTenant(ctx context.Context, t NewTenant, actor Actor) (Tenant, error)
	GetTenant(ctx context.Context, tenantID string) (Tenant, error)
	GetTenantByName(ctx context.Context, name string) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)
	// SetOwnerLogin replaces the owner's password hash and TOTP secret
	// (plaintext in memory, sealed at rest; nil clears it).
	SetOwnerLogin(ctx context.Context, tenantID, passwordHash string, totpSecret []byte, actor Actor) error

	// UseTOTPStep spends a verified TOTP code: it records its time step for
	// the owner (subID "") or a sub-account and refuses (ErrCodeReused) a
	// step at or before the last one spent, so every code works once.
	UseTOTPStep(ctx context.Context, tenantID, subID string, step int64) error

	// Sub-accounts.
	CreateSubAccount(ctx context.Context, s NewSubAccount, actor Actor) (SubAccount, error)
	GetSubAccount(ctx context.Context, tenantID, subID string) (SubAccount, error)
	GetSubAccountByName(ctx context.Context, tenantID, name string) (SubAccount, error)
	// Positions per store (positions.go).
	Positions
	ListSubAccounts(ctx context.Context, tenantID string, f SubAccountFilter) ([]SubAccount, error)
	SetPassword(ctx context.Context, tenantID, subID, passwordHash string, actor Actor) error
	SetRole(ctx context.Context, tenantID, subID, role string, grants []string, actor Actor) (SubAccount, error)
	// EnablePhone stores the TOTP secret (sealed at rest) and marks phone
	// verification enabled. A nil secret disables it (refused while
	// certificate protection is on).
	EnablePhone(ctx context.Context, tenantID, subID string, totpSecret []byte, actor Actor) (SubAccount, error)
	// SetProtection enables/disables certificate protection with N devices.
	// Lowering N below the number of active devices returns *BelowActiveError.
	SetProtection(ctx context.Context, tenantID, subID string, p Protection, actor Actor) (SubAccount, error)
	SetValidity(ctx context.Context, tenantID, subID string, w Window, actor Actor) (SubAccount, error)
	// SetStatus changes active/frozen/departed. Departing revokes every
	// active device of the sub-account in the same transaction.
	SetStatus(ctx context.Context, tenantID, subID string, status SubStatus, actor Actor) (SubAccount, []Revocation, error)

	// Enrollment tickets (only the SHA-256 of the code is stored).
	CreateTicket(ctx context.Context, t NewTicket, actor Actor) error
	// LookupTicket finds a ticket by its hash without consuming it (used to
	// pre-check before signing); errors: ErrTicketUnknown/Expired/Used.
	LookupTicket(ctx context.Context, hash []byte, now time.Time) (Ticket, error)
	// IssuePrecheck reads in one query what an issuance checks before it
	// signs: the ticket of hash (if set; its sub-account then, and its
	// state errors as LookupTicket's, with the ticket filled in) or else the
	// sub-account tenantID/subID, and the sub-account's active devices at now.
	IssuePrecheck(ctx context.Context, hash []byte, tenantID, subID string, now time.Time) (IssueCheck, error)

	// Devices.
	// IssueDevice is the quota gate: in one transaction it locks the
	// sub-account, checks eligibility and the active-device count against
	// N, consumes the ticket (if any) and records the device. It returns the
	// number of active devices after this one ("Installed (k/N)").
	IssueDevice(ctx context.Context, r IssueRequest, actor Actor) (Device, int, error)
	// RenewDevice swaps the certificate of an active device (same id, same
	// slot) and revokes the old serial with reason superseded.
	RenewDevice(ctx context.Context, r RenewRequest, actor Actor) (Device, Revocation, error)
	// RedeliverDevice hands out again the stored certificate (DER) of the
	// active device of r's sub-account whose certificate has r.KeyID, that
	// was issued within [r.IssuedFrom, r.IssuedTo] and never seen at a
	// proxy, and audits "device.redelivered"; nothing else changes. Any
	// other case is ErrNotFound (and changes nothing).
	RedeliverDevice(ctx context.Context, r RedeliverRequest, actor Actor) (Device, []byte, error)
	RevokeDevice(ctx context.Context, tenantID, deviceID string, reason RevocationReason, actor Actor) (Revocation, error)
	// AllowEarlyRenewal lets an active device of the tenant renew once,
	// before until, even far from its certificate's end: it sets the
	// device's RenewAllowedUntil (RenewDevice clears it) and audits
	// "device.renew_allowed". until must be in the future, at most
	// MaxRenewAllowance away (else ErrInvalid); a device of another tenant
	// is ErrNotFound, an inactive one ErrDeviceInactive; a refusal changes
	// nothing.
	AllowEarlyRenewal(ctx context.Context, tenantID, deviceID string, until time.Time, actor Actor) (Device, error)
	RevokeSubAccountDevices(ctx context.Context, tenantID, subID string, reason RevocationReason, actor Actor) ([]Revocation, error)
	GetDevice(ctx context.Context, tenantID, deviceID string) (Device, error)
	ListDevices(ctx context.Context, tenantID, subID string) ([]Device, error)
	// CountActiveDevices counts the devices holding a quota slot at now.
	CountActiveDevices(ctx context.Context, tenantID, subID string, now time.Time) (int, error)
	// FindDevice looks a device up across tenants by device id or serial
	// (hex). For the operator CLI and the OCSP responder only.
	FindDevice(ctx context.Context, idOrSerial string) (Device, error)
	TouchDevice(ctx context.Context, tenantID, deviceID string, at time.Time, ip string) error

	// Revocations, globally ordered by Seq.
	RevocationsSince(ctx context.Context, afterSeq int64, limit int) ([]Revocation, error)
	// RevocationsForCRL lists revocations whose certificate has not expired at now.
	RevocationsForCRL(ctx context.Context, now time.Time) ([]Revocation, error)
	// CurrentSeq is the newest policy change number; cheap enough to poll.
	CurrentSeq(ctx context.Context) (int64, error)
	// PolicyChangesSince returns, across tenants, the sub-accounts and
	// devices whose last change has a seq > afterSeq, and the seq the
	// answer is complete up to (proxies build their policy snapshot from it).
	// With afterSeq 0 (a first load) only active devices are returned.
	// Devices come in no particular order (each is one entry).
	PolicyChangesSince(ctx context.Context, afterSeq int64) (PolicyChanges, error)

	// Proxy certificates (ProxyCert): the record the CA checks on every
	// feed request. RecordProxyCert stores a new one; a renewal
	// (RenewedFrom set) keeps the name and scope of the certificate it
	// renews, which must be active then (else ErrProxyInactive).
	RecordProxyCert(ctx context.Context, p ProxyCert) (ProxyCert, error)
	GetProxyCert(ctx context.Context, serial string) (ProxyCert, error)
	ListProxyCerts(ctx context.Context) ([]ProxyCert, error)
	// RevokeProxyCerts revokes the certificate with this serial and every
	// unrevoked one of the proxy with this name (ErrNotFound: neither
	// exists), and moves the policy seq so the CRL and open feeds follow.
	RevokeProxyCerts(ctx context.Context, nameOrSerial string, reason RevocationReason, now time.Time) ([]ProxyCert, error)
	// ProxyRevocationsSince lists the proxy certificates revoked with a
	// seq > afterSeq as revocations (no tenant, sub-account or device), by
	// seq: with RevocationsSince, how a CA learns every change of its CRL
	// made elsewhere without re-reading the whole list.
	ProxyRevocationsSince(ctx context.Context, afterSeq int64) ([]Revocation, error)

	// Proxy reports (ProxyReport): which policy seq each proxy has
	// applied. ReportProxy records r.Name's report at r.SeenAt: Seq and
	// SeenAt never go back (a late report changes neither), AppliedAt is
	// when Seq last advanced. ListProxyReports lists every proxy ever
	// reported, live or not, by name.
	ReportProxy(ctx context.Context, r ProxyReport) error
	ListProxyReports(ctx context.Context) ([]ProxyReport, error)

	// Audit log: append-only, per-tenant sequence, SHA-256 hash chain.
	AppendAudit(ctx context.Context, tenantID string, e AuditEntry) (AuditEvent, error)
	// AppendAuditBatch appends many events (of any tenants, each chain in
	// the given order) in one transaction: the proxy's audit writer.
	AppendAuditBatch(ctx context.Context, records []AuditRecord) error
	ListAudit(ctx context.Context, tenantID string, f AuditFilter) ([]AuditEvent, error)
	// VerifyAudit recomputes the chain of one tenant and reports the first break.
	VerifyAudit(ctx context.Context, tenantID string) error

	// Portal sessions (see Session). CreateSession also deletes the
	// session replaced (the one of the same browser at the previous login
	// step; nil: none) and every session past its end, in one transaction.
	CreateSession(ctx context.Context, s Session, replaces []byte) error
	// GetSession returns a live session and records its use (at most once a
	// minute); an unknown or ended one is ErrSessionUnknown (and deleted).
	GetSession(ctx context.Context, hash []byte, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteSessions ends every session of a sub-account (subID "": the
	// owner's), e.g. when it is frozen or departed.
	DeleteSessions(ctx context.Context, tenantID, subID string) error

	// Lockouts: failure counters per name (an account or a client IP),
	// shared by every node. CountFailure adds a failure at now: failures
	// older than window are forgotten, and the max-th within window locks
	// the name until now+window (returned; zero when not locked).
	CountFailure(ctx context.Context, name string, now time.Time, max int, window time.Duration) (time.Time, error)
	// LockedUntil is when the name's lock ends (zero: not locked at now).
	LockedUntil(ctx context.Context, name string, now time.Time) (time.Time, error)
	// ClearFailures forgets a name's failures (a good login).
	ClearFailures(ctx context.Context, name string) error

	Close() error
}
