package enroll

import (
	"sync"
	"time"
)

// limiter locks a key (an account or a client IP) out after too many
// failures in a window: login, TOTP and enrollment-code guessing are all
// bounded per account and per IP.
type limiter struct {
	mu       sync.Mutex
	m        map[string]*failures
	max      int           // failures allowed in window
	window   time.Duration // counting window, and the lockout length
	capacity int
}

type failures struct {
	count       int
	since       time.Time // start of the counting window
	lockedUntil time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{m: map[string]*failures{}, max: max, window: window, capacity: 200_000}
}

// allowed says whether key may try now, and if not, for how long it waits.
func (l *limiter) allowed(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[key]
	if f == nil {
		// Fail closed when the table is full even after dropping expired
		// entries: a flood of keys must not reset everybody's counters.
		if len(l.m) >= l.capacity {
			l.sweepLocked(now)
			if len(l.m) >= l.capacity {
				return false, l.window
			}
		}
		return true, 0
	}
	if now.Before(f.lockedUntil) {
		return false, f.lockedUntil.Sub(now)
	}
	return true, 0
}

// fail counts one failure; the max-th in a window locks the key.
func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[key]
	if f == nil || now.Sub(f.since) > l.window {
		if f == nil && len(l.m) >= l.capacity {
			return // allowed() already refuses new keys
		}
		f = &failures{since: now}
		l.m[key] = f
	}
	f.count++
	if f.count >= l.max {
		f.lockedUntil = now.Add(l.window)
		f.count, f.since = 0, now
	}
}

// succeed clears a key's failures (an account after a good login; IP
// counters are never cleared by success, so one good account does not
// launder guesses at others).
func (l *limiter) succeed(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}

func (l *limiter) sweepLocked(now time.Time) {
	for k, f := range l.m {
		if now.After(f.lockedUntil) && now.Sub(f.since) > l.window {
			delete(l.m, k)
		}
	}
}
