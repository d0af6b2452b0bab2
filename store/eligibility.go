package store

import "time"

// Eligible reports whether s may hold a device certificate that is valid
// until certNotAfter (zero: skip that check), judged at now. Backends call
// it under the row lock; the CA calls it first to refuse before signing.
func Eligible(s SubAccount, now, certNotAfter time.Time) error {
	switch {
	case s.Status == StatusFrozen:
		return &NotEligibleError{Reason: "frozen"}
	case s.Status == StatusDeparted:
		return &NotEligibleError{Reason: "departed"}
	case s.Status != StatusActive:
		return &NotEligibleError{Reason: "status_" + string(s.Status)}
	case s.VerifyFrozen:
		return &NotEligibleError{Reason: "not_verified"}
	case !s.PhoneEnabled:
		return &NotEligibleError{Reason: "phone_not_verified"}
	case !s.Protection.Enabled:
		return &NotEligibleError{Reason: "protection_disabled"}
	case !s.Window.Contains(now):
		return &NotEligibleError{Reason: "outside_validity_window"}
	case !certNotAfter.IsZero() && !s.Window.NotAfter.IsZero() && certNotAfter.After(s.Window.NotAfter):
		return &NotEligibleError{Reason: "expires_after_window"}
	}
	return nil
}

// CountActive counts the devices holding a quota slot at now.
func CountActive(devices []Device, now time.Time) int {
	n := 0
	for _, d := range devices {
		if d.ActiveAt(now) {
			n++
		}
	}
	return n
}
