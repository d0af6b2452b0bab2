package ratelimit

import (
	"context"
	"log/slog"
	"time"
)

// Counters is where Shared keeps its counts (store.Store implements it).
type Counters interface {
	CountFailure(ctx context.Context, name string, now time.Time, max int, window time.Duration) (time.Time, error)
	LockedUntil(ctx context.Context, name string, now time.Time) (time.Time, error)
	ClearFailures(ctx context.Context, name string) error
}

// Shared locks keys out like Limiter with its counters in the store, so
// every node of a fleet counts the same failures and a restart forgets
// none. A store that cannot answer counts as a lock (fail closed).
type Shared struct {
	c      Counters
	prefix string // keeps each limiter's keys apart in the store
	max    int
	window time.Duration
	log    *slog.Logger
}

// NewShared allows max failures per window for keys under prefix.
func NewShared(c Counters, prefix string, max int, window time.Duration, log *slog.Logger) *Shared {
	return &Shared{c: c, prefix: prefix, max: max, window: window, log: log}
}

// Allowed says whether key may try now, and if not, for how long it waits.
func (s *Shared) Allowed(ctx context.Context, key string, now time.Time) (bool, time.Duration) {
	ok, wait, err := s.Check(ctx, key, now)
	if err != nil {
		s.log.Error("lockout: read failed, refusing", "err", err)
	}
	return ok, wait
}

// Check is Allowed for a caller that tells the user something else when
// the store cannot answer (err, and ok is false) than when key is locked.
func (s *Shared) Check(ctx context.Context, key string, now time.Time) (ok bool, wait time.Duration, err error) {
	until, err := s.c.LockedUntil(ctx, s.prefix+key, now)
	if err != nil {
		return false, s.window, err
	}
	if until.IsZero() {
		return true, 0, nil
	}
	return false, until.Sub(now), nil
}

// Fail counts one failure of key.
func (s *Shared) Fail(ctx context.Context, key string, now time.Time) {
	if _, err := s.c.CountFailure(ctx, s.prefix+key, now, s.max, s.window); err != nil {
		s.log.Error("lockout: count failed", "err", err)
	}
}

// Succeed clears key's failures.
func (s *Shared) Succeed(ctx context.Context, key string) {
	if err := s.c.ClearFailures(ctx, s.prefix+key); err != nil {
		s.log.Error("lockout: clear failed", "err", err)
	}
}
