package store

import "time"

// Temporary reports whether the sub-account is a temporary one (seed: a
// customer-service account for a promotion): it has a window end. Such an
// account is exempt from real-person verification, its certificates end
// with the window (the CA caps NotAfter), and the portal and the proxy
// refuse it outside the window, judged by their own clocks, so access ends
// without anyone acting.
func (s SubAccount) Temporary() bool { return !s.Window.NotAfter.IsZero() }

// WindowEnded reports whether a temporary account's window is over at now.
func (s SubAccount) WindowEnded(now time.Time) bool {
	return s.Temporary() && !now.Before(s.Window.NotAfter)
}

// VerifyDeadline is when the new sub-account must have finished
// real-person verification: VerifyBy, except for a temporary account,
// which is exempt (zero: no verification required).
func (n NewSubAccount) VerifyDeadline() time.Time {
	if !n.Window.NotAfter.IsZero() {
		return time.Time{}
	}
	return n.VerifyBy
}
