package proxy

import "time"

// lazyDeadline moves a connection's deadline to now+timeout only when it
// would move by more than an eighth of timeout (at most 1 s): each move is
// timer work in the runtime, and busy connections would pay it per request.
// An operation then gets between 7/8 of timeout and timeout. The zero
// value (or a reset to it) moves on the next call.
type lazyDeadline struct {
	at time.Time
}

// next returns the deadline to set, or the zero time when the current one
// is recent enough.
func (d *lazyDeadline) next(now time.Time, timeout time.Duration) time.Time {
	next := now.Add(timeout)
	if next.Sub(d.at) <= min(timeout/8, time.Second) {
		return time.Time{}
	}
	d.at = next
	return next
}
