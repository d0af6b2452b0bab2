package store

import (
	"errors"
	"strings"
)

var (
	ErrNotFound       = errors.New("not found")
	ErrDuplicate      = errors.New("already exists")
	ErrInvalid        = errors.New("invalid input")
	ErrQuotaExceeded  = errors.New("the number of installed certificates has reached the limit")
	ErrTicketUnknown  = errors.New("enrollment code is not valid")
	ErrSessionUnknown = errors.New("session is unknown or has ended")
	ErrTicketExpired  = errors.New("enrollment code has expired")
	ErrTicketUsed     = errors.New("enrollment code was already used")
	ErrNotEligible    = errors.New("sub-account is not eligible for a device certificate")
	ErrDeviceInactive = errors.New("device is revoked or expired")
	ErrStale          = errors.New("record changed concurrently; retry")
	ErrCodeReused     = errors.New("verification code was already used")
	ErrKeyInUse       = errors.New("this key pair already has an active device certificate")
)

// NotEligibleError says why a sub-account may not get a certificate now.
// It wraps ErrNotEligible.
type NotEligibleError struct {
	Reason string // "frozen", "departed", "phone_not_verified", "protection_disabled", "outside_validity_window", "expires_after_window"
}

func (e *NotEligibleError) Error() string { return ErrNotEligible.Error() + ": " + e.Reason }
func (e *NotEligibleError) Unwrap() error { return ErrNotEligible }

// BelowActiveError refuses lowering N below the active device count and
// lists the devices the owner has to revoke first.
type BelowActiveError struct {
	Requested int
	Active    []Device
}

func (e *BelowActiveError) Error() string {
	var b strings.Builder
	b.WriteString("cannot lower the device limit below the number of installed certificates; revoke first:")
	for _, d := range e.Active {
		b.WriteString(" ")
		b.WriteString(d.ID)
		if d.Label != "" {
			b.WriteString(" (" + d.Label + ")")
		}
	}
	return b.String()
}

func (e *BelowActiveError) Unwrap() error { return ErrInvalid }
