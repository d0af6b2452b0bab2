package store

import "time"

// Actor is who performs a change; it goes into the audit event.
type Actor struct {
	Kind string // "owner", "sub", "cli", "system", "proxy"
	Name string // e.g. "demo-store:alice" or "admin-cli"
	IP   string
	UA   string
}

// NewTenant is the input of CreateTenant.
type NewTenant struct {
	Name        string // unique, the "store" part of "store:name"
	DisplayName string
}

// Tenant is one store (shop): the unit of isolation.
type Tenant struct {
	ID                string
	Name              string
	DisplayName       string
	OwnerPasswordHash string
	OwnerTOTPSecret   []byte // plaintext in memory, sealed at rest
	// OwnerCertRequired: every owner page and action needs a valid owner
	// device certificate (OwnerCerts).
	OwnerCertRequired bool
	CreatedAt         time.Time
}

// SubStatus is the lifecycle state of a sub-account.
type SubStatus string

const (
	StatusActive   SubStatus = "active"
	StatusFrozen   SubStatus = "frozen"
	StatusDeparted SubStatus = "departed"
)

// Valid reports whether s is one of the known statuses.
func (s SubStatus) Valid() bool {
	return s == StatusActive || s == StatusFrozen || s == StatusDeparted
}

// Protection is the certificate-protection setting of a sub-account.
type Protection struct {
	Enabled    bool
	MaxDevices int // N, 1..5 when enabled
}

// MaxDevicesLimit is the largest N an owner may choose (seed 000: up to 5).
const MaxDevicesLimit = 5

// Window optionally bounds when a (temporary) sub-account may work; a zero
// time means unbounded on that side.
type Window struct {
	NotBefore time.Time
	NotAfter  time.Time
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool {
	if !w.NotBefore.IsZero() && t.Before(w.NotBefore) {
		return false
	}
	if !w.NotAfter.IsZero() && !t.Before(w.NotAfter) {
		return false
	}
	return true
}

// NewSubAccount is the input of CreateSubAccount.
type NewSubAccount struct {
	TenantID     string
	Name         string // the part after "store:"; validated by identity.ValidateSubName
	Role         string
	Grants       []string // supplementary permission points
	PasswordHash string
	Window       Window
	// VerifyBy, when set, requires real-person verification by then (a
	// Verification is created with the sub-account).
	VerifyBy time.Time
}

// SubAccount is a staff login of a store.
type SubAccount struct {
	ID           string
	TenantID     string
	TenantName   string
	Name         string
	Role         string
	Grants       []string
	Status       SubStatus
	PasswordHash string `json:"-"` // never serialized (the policy feed sends sub-accounts)
	PhoneEnabled bool
	TOTPSecret   []byte `json:"-"` // plaintext in memory, sealed at rest; never serialized
	Protection   Protection
	Window       Window
	// VerifyFrozen: frozen for not finishing real-person verification in
	// time (see Verification); set only by UpdateVerification.
	VerifyFrozen bool
	// Owner: the hidden sub-account of the owner's own computers
	// (OwnerCerts); never listed, never a staff login.
	Owner     bool
	ChangeSeq int64 // policy seq of the last change to this row
	CreatedAt time.Time
	UpdatedAt time.Time

	// RolePoints are the store's own points of Role when the owner edited
	// the position (RoleEdited; else the catalog's defaults apply). Filled
	// by PolicyChangesSince, for proxies; see EffectivePermissions.
	RolePoints []string
	RoleEdited bool
}

// FullName is the display identity "store:name"; the owner's own is the
// store's name, as the owner logs in.
func (s SubAccount) FullName() string {
	if s.Owner {
		return s.TenantName
	}
	return s.TenantName + ":" + s.Name
}

// SubAccountFilter narrows ListSubAccounts.
type SubAccountFilter struct {
	Search string    // substring of the name, case-insensitive
	Status SubStatus // empty: all
}

// DeviceStatus is the state of one enrolled device.
type DeviceStatus string

const (
	DeviceActive  DeviceStatus = "active"
	DeviceRevoked DeviceStatus = "revoked"
)

// Device is one enrolled computer of a sub-account with its current certificate.
type Device struct {
	ID          string
	TenantID    string
	SubID       string
	Label       string
	Serial      string // lower-case hex, no leading zeros
	Fingerprint string // lower-case hex SHA-256 of the DER certificate
	KeyID       string // lower-case hex SHA-256 of the certificate's SubjectPublicKeyInfo
	Status      DeviceStatus
	IssuedAt    time.Time
	ExpiresAt   time.Time
	EnrolledIP  string
	EnrolledUA  string
	LastSeenAt  time.Time
	LastSeenIP  string
	RevokedAt   time.Time
	Reason      RevocationReason
	// RenewAllowedUntil: before this time the device may renew once even
	// far from its certificate's end (the owner allowed it; zero: not
	// allowed). The renewal clears it.
	RenewAllowedUntil time.Time
	ChangeSeq         int64 // policy seq of the last change to this row (for a revoked device: its revocation's)
}

// MaxRenewAllowance is the longest an owner's permission for an early
// renewal lasts (AllowEarlyRenewal refuses a later end).
const MaxRenewAllowance = 30 * 24 * time.Hour

// ActiveAt reports whether the device holds a quota slot at t.
func (d Device) ActiveAt(t time.Time) bool {
	return d.Status == DeviceActive && t.Before(d.ExpiresAt)
}

// IssueRequest is the input of IssueDevice. The caller signed the
// certificate already (outside the transaction); the store decides whether
// it may be handed out.
type IssueRequest struct {
	TenantID    string
	SubID       string
	TicketHash  []byte // optional: consumed in the same transaction
	DeviceID    string
	Label       string
	Serial      string
	Fingerprint string
	KeyID       string // optional: refused while another active device has the same key
	// CertDER is the issued certificate (optional; when set its SHA-256
	// must be Fingerprint), kept with the device for RedeliverDevice.
	CertDER    []byte
	IssuedAt   time.Time
	ExpiresAt  time.Time
	EnrolledIP string
	EnrolledUA string
	Now        time.Time
}

// RedeliverRequest is the input of RedeliverDevice: which device of which
// sub-account may be handed out again.
type RedeliverRequest struct {
	TenantID string
	SubID    string
	KeyID    string // the key the caller proved it holds (CSR signature)
	// The device must have been issued within [IssuedFrom, IssuedTo].
	IssuedFrom time.Time
	IssuedTo   time.Time
	Now        time.Time
}

// RenewRequest is the input of RenewDevice.
type RenewRequest struct {
	TenantID    string
	DeviceID    string
	OldSerial   string // must be the device's current serial
	Serial      string
	Fingerprint string
	KeyID       string // the new certificate's key (see IssueRequest)
	CertDER     []byte // the new certificate (see IssueRequest)
	IssuedAt    time.Time
	ExpiresAt   time.Time
	Now         time.Time
}

// IssueCheck is what IssuePrecheck reads.
type IssueCheck struct {
	Ticket     Ticket // when a ticket was asked for
	SubAccount SubAccount
	Active     int // active, unexpired devices of the sub-account
}

// NewTicket is the input of CreateTicket.
type NewTicket struct {
	TenantID  string
	SubID     string
	Hash      []byte // SHA-256 of the code
	ExpiresAt time.Time
}

// Ticket is a one-time enrollment ticket.
type Ticket struct {
	TenantID  string
	SubID     string
	ExpiresAt time.Time
	UsedAt    time.Time
}

// RevocationReason is an RFC 5280 CRLReason code.
type RevocationReason int

const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonPrivilegeWithdrawn   RevocationReason = 9
)

// Revocation is one revoked certificate, globally ordered by Seq.
type Revocation struct {
	Seq       int64
	Serial    string
	TenantID  string
	SubID     string
	DeviceID  string
	Reason    RevocationReason
	RevokedAt time.Time
	ExpiresAt time.Time // the certificate's NotAfter: CRL entries can be dropped after it
}

// AuditEntry is the input of AppendAudit.
type AuditEntry struct {
	Time    time.Time
	Actor   Actor
	Action  string // e.g. "sub.create", "device.issue", "proxy.allow"
	Target  string // e.g. "demo-store:alice" or a device id
	Outcome string // "ok", "denied", ...
	Detail  map[string]string
}

// AuditEvent is one stored, chained audit record.
type AuditEvent struct {
	AuditEntry
	TenantID string
	Seq      int64  // per tenant, from 1
	PrevHash string // hex
	Hash     string // hex SHA-256 over PrevHash and the canonical entry
}

// AuditRecord is one event of AppendAuditBatch.
type AuditRecord struct {
	TenantID string
	Entry    AuditEntry
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	Target   string
	Action   string // prefix match
	AfterSeq int64
	Limit    int // 0: 1000
}

// PolicyChanges is what changed for access decisions after a seq.
type PolicyChanges struct {
	Seq         int64 // complete up to here
	SubAccounts []SubAccount
	// Devices carry what a decision reads: ID, TenantID, SubID, Serial,
	// Status, ExpiresAt and ChangeSeq; the other fields are empty.
	Devices []Device
}

// Session is a portal login session. The store keeps only the SHA-256 of
// its id (Hash); Secret (an owner's TOTP key being set up) is sealed at
// rest. Sessions live in the store so that every portal node sees the
// same ones and a restart logs nobody out.
type Session struct {
	Hash      []byte        // SHA-256 of the cookie's random id
	Kind      string        // "owner" or "staff"
	TenantID  string        //
	SubID     string        // staff only
	Name      string        // "store" for owners, "store:name" for staff
	CSRF      string        // the session's CSRF token
	Step      string        // login step ("" when fully logged in)
	Secret    []byte        // sealed at rest; nil when none
	CreatedAt time.Time     //
	SeenAt    time.Time     // last use, kept to the minute
	ExpiresAt time.Time     // absolute end
	Idle      time.Duration // unused this long, the session ends
}

// Live reports whether the session may be used at now.
func (s Session) Live(now time.Time) bool {
	return now.Before(s.ExpiresAt) && now.Sub(s.SeenAt) < s.Idle
}
