package store

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
)

// Real-person verification (seeds 001 and 003): a new sub-account must show
// who uses it within VerifyPeriod, else it is frozen (VerifyFrozen) until
// the owner lifts the freeze, which gives UnfreezePeriod more.

// VerifyState is where a sub-account's verification stands.
type VerifyState string

const (
	VerifyNotStarted  VerifyState = "not_started"
	VerifyInProgress  VerifyState = "in_progress"  // the link was opened; VerifyAttempt to submit
	VerifyUnderReview VerifyState = "under_review" // submitted; the account keeps working
	VerifyVerified    VerifyState = "verified"
	VerifyRejected    VerifyState = "rejected" // with a reason; may try again
)

// Valid reports whether s is one of the known states.
func (s VerifyState) Valid() bool {
	switch s {
	case VerifyNotStarted, VerifyInProgress, VerifyUnderReview, VerifyVerified, VerifyRejected:
		return true
	}
	return false
}

// Pending reports whether the deadline applies in state s: under review
// and verified accounts are never frozen for it.
func (s VerifyState) Pending() bool {
	return s == VerifyNotStarted || s == VerifyInProgress || s == VerifyRejected
}

// The periods of the seeds.
const (
	VerifyPeriod   = 7 * 24 * time.Hour // from creation (or an unbinding) to the freeze
	UnfreezePeriod = 2 * 24 * time.Hour // after the owner lifts a freeze
	VerifyAttempt  = 30 * time.Minute   // from opening the link to submitting
	ReviewPeriod   = 48 * time.Hour     // the promised longest review
)

// Verification is the real-person verification record of one sub-account.
// A sub-account without one need not verify (created before the feature,
// or temporary).
type Verification struct {
	TenantID string
	SubID    string
	SubName  string // "store:name"
	State    VerifyState
	// Deadline: a pending verification not finished by then freezes the
	// sub-account.
	Deadline time.Time
	Frozen   bool   // the sub-account is frozen for not verifying (SubAccount.VerifyFrozen)
	Link     string `json:"-"` // the link's secret token; plaintext in memory, sealed at rest
	// StartedAt is when the link was last opened to verify (the attempt
	// must be submitted within VerifyAttempt).
	StartedAt   time.Time
	SubmittedAt time.Time
	DecidedAt   time.Time
	Reason      string // why the last submission was rejected
	Holder      string // the user's name (子账号使用人), shown to the owner
	Bound       bool   // a person is bound (their keyed hashes are stored)
	Unfreezes   int    // how often the owner lifted a freeze
	UpdatedAt   time.Time

	// Person, set by a change, binds this person: the store keeps only
	// keyed hashes of it. Clearing Bound unbinds.
	Person *Person `json:"-"`
}

// Person is who uses a sub-account, as submitted. It is never stored or
// logged: only keyed hashes (HMAC with a key derived from the seal key,
// per store) are, so one store's records cannot be matched with another's.
type Person struct {
	IDNumber string
	Phone    string
}

// Normalized returns the canonical forms (upper case, no spaces or
// dashes; the phone's digits, without a leading +86) and whether both look
// like an identity number and a phone number.
func (p Person) Normalized() (Person, bool) {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) || r == '-' {
				return -1
			}
			return unicode.ToUpper(r)
		}, s)
	}
	id, phone := clean(p.IDNumber), clean(p.Phone)
	phone = strings.TrimPrefix(strings.TrimPrefix(phone, "+86"), "0086")
	if len(id) < 6 || len(id) > 32 || len(phone) < 6 || len(phone) > 20 {
		return Person{}, false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'A' || r > 'Z') {
			return Person{}, false
		}
	}
	for _, r := range phone {
		if r < '0' || r > '9' {
			return Person{}, false
		}
	}
	return Person{IDNumber: id, Phone: phone}, true
}

// ErrPersonBound refuses binding a person already bound to another
// sub-account of the same store.
var ErrPersonBound = errors.New("this person is already bound to another sub-account of the store")

// VerificationChange is one step of a verification, decided by the caller
// (the rules, with their clock) on the locked record: it edits v and
// returns the audit detail, or an error that changes nothing.
type VerificationChange func(v *Verification) (detail map[string]string, err error)

// Verifications is the store's part of real-person verification.
type Verifications interface {
	// GetVerification is ErrNotFound for a sub-account that need not verify.
	GetVerification(ctx context.Context, tenantID, subID string) (Verification, error)
	ListVerifications(ctx context.Context, tenantID string) ([]Verification, error)
	// VerificationByLink finds the record of a link token's SHA-256, in
	// any store (the caller compares it with who opened it).
	VerificationByLink(ctx context.Context, linkHash []byte) (Verification, error)
	// UpdateVerification locks the record, applies change and writes it
	// back with its audit event (action) in one transaction. A change of
	// Frozen moves the policy seq (proxies follow) and a freeze ends the
	// sub-account's portal sessions; a new Link replaces the old one; a
	// Person already bound to another sub-account of the store is
	// ErrPersonBound.
	UpdateVerification(ctx context.Context, tenantID, subID string, actor Actor, action string, change VerificationChange) (Verification, error)
	// OverdueVerifications lists, across stores, the pending verifications
	// past their deadline at now whose sub-account is not frozen yet.
	OverdueVerifications(ctx context.Context, now time.Time, limit int) ([]Verification, error)

	// AcquireLease takes or extends the named lease for holder until
	// now+ttl, when it is free, expired or already holder's; it reports
	// whether holder has it. Jobs that must run on one node use it.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// UseNonce records a one-time nonce until expires (ErrDuplicate when
	// it was used before) and forgets nonces expired at now.
	UseNonce(ctx context.Context, nonce string, expires, now time.Time) error
}
