package sqlstore

import (
	"context"
	"database/sql"
	"time"
)

// lockoutSweep is how long a name without a lock is kept at least: every
// window is shorter, so sweeping cannot forget a failure that still counts.
const lockoutSweep = 24 * time.Hour

// CountFailure adds one failure in a single upsert (the row lock orders
// concurrent failures of the same name), then locks the name when the
// count reaches max. Names idle for a day and not locked are swept.
func (s *DB) CountFailure(ctx context.Context, name string, now time.Time, max int, window time.Duration) (time.Time, error) {
	if name == "" || len(name) > 512 || max < 1 || window <= 0 || window > lockoutSweep {
		return time.Time{}, invalid("lockout needs a name, max >= 1 and a window of at most a day")
	}
	var locked time.Time
	err := s.inTx(ctx, func(tx *txn) error {
		cut := ts(now.Add(-window))
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM lockouts WHERE since < ? AND locked_until < ?`), ts(now.Add(-lockoutSweep)), ts(now)); err != nil {
			return err
		}
		var failures, until int64
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO lockouts (name, failures, since, locked_until) VALUES (?, 1, ?, 0)
			ON CONFLICT (name) DO UPDATE SET
				failures = CASE WHEN lockouts.since < ? THEN 1 ELSE lockouts.failures + 1 END,
				since = CASE WHEN lockouts.since < ? THEN ? ELSE lockouts.since END
			RETURNING failures, locked_until`), name, ts(now), cut, cut, ts(now)).Scan(&failures, &until)
		if err != nil {
			return err
		}
		if until > ts(now) {
			locked = fromTS(until)
		}
		if failures < int64(max) {
			return nil
		}
		// The max-th failure locks the name and starts a new count.
		locked = now.Add(window)
		_, err = tx.ExecContext(ctx, s.q(`UPDATE lockouts SET failures = 0, since = ?, locked_until = ? WHERE name = ?`), ts(now), ts(locked), name)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	return locked, nil
}

// LockedUntil reads a name's lock.
func (s *DB) LockedUntil(ctx context.Context, name string, now time.Time) (time.Time, error) {
	var until int64
	err := s.ro().QueryRowContext(ctx, s.q(`SELECT locked_until FROM lockouts WHERE name = ?`), name).Scan(&until)
	if err == sql.ErrNoRows || (err == nil && until <= ts(now)) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return fromTS(until), nil
}

// ClearFailures forgets a name's failures and lock.
func (s *DB) ClearFailures(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM lockouts WHERE name = ?`), name)
		return err
	})
}
