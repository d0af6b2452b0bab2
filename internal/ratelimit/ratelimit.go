// Package ratelimit locks keys (accounts, client IPs) out after repeated
// failures: the portal's logins and TOTP codes and the CA's enrollment
// codes are all bounded this way.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter locks a key (an account or a client IP) out after too many
// failures in a window. It is safe for concurrent use and bounded in size.
type Limiter struct {
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

// New allows max failures per window; the max-th locks the key for window.
func New(max int, window time.Duration) *Limiter {
	return &Limiter{m: map[string]*failures{}, max: max, window: window, capacity: 200_000}
}

// Allowed says whether key may try now, and if not, for how long it waits.
func (l *Limiter) Allowed(key string, now time.Time) (bool, time.Duration) {
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

// Fail counts one failure; the max-th in a window locks the key.
func (l *Limiter) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[key]
	if f == nil || now.Sub(f.since) > l.window {
		if f == nil && len(l.m) >= l.capacity {
			return // Allowed already refuses new keys
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

// Succeed clears a key's failures (an account after a good login; IP
// counters are never cleared by success, so one good account does not
// launder guesses at others).
func (l *Limiter) Succeed(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}

func (l *Limiter) sweepLocked(now time.Time) {
	for k, f := range l.m {
		if now.After(f.lockedUntil) && now.Sub(f.since) > l.window {
			delete(l.m, k)
		}
	}
}
