package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"time"

	"github.com/devicegate/devicegate/store"
)

// sessionTouch is how stale a session's last-use time may get before a
// read writes it again: idle timeouts are minutes long, a write per page
// view would be waste.
const sessionTouch = time.Minute

func sessionRowID(hash []byte) string { return "session:" + hex.EncodeToString(hash) }

// CreateSession stores a new session, drops the one it replaces and sweeps
// ended ones, in one transaction.
func (s *DB) CreateSession(ctx context.Context, se store.Session, replaces []byte) error {
	switch {
	case len(se.Hash) != 32:
		return invalid("session hash must be 32 bytes")
	case se.Kind != "owner" && se.Kind != "staff":
		return invalid("session kind must be owner or staff")
	case se.TenantID == "" || se.CSRF == "":
		return invalid("session needs a tenant and a CSRF token")
	case se.Idle <= 0 || !se.ExpiresAt.After(se.CreatedAt):
		return invalid("session needs an idle timeout and an end after its start")
	}
	return s.inTx(ctx, func(tx *txn) error {
		if len(replaces) > 0 {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE hash = ?`), replaces); err != nil {
				return err
			}
		}
		now := ts(se.CreatedAt)
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE expires_at <= ? OR seen_at + idle_us <= ?`), now, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO sessions (hash, kind, tenant_id, sub_id, name, csrf, step, secret, created_at, seen_at, expires_at, idle_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			se.Hash, se.Kind, se.TenantID, se.SubID, se.Name, se.CSRF, se.Step, s.sealer.seal(se.Secret, sessionRowID(se.Hash)),
			now, ts(se.SeenAt), ts(se.ExpiresAt), se.Idle.Microseconds())
		if err != nil && s.d.IsUniqueViolation(err) {
			return store.ErrDuplicate
		}
		return err
	})
}

// GetSession returns a live session, ending it if it is not.
func (s *DB) GetSession(ctx context.Context, hash []byte, now time.Time) (store.Session, error) {
	se := store.Session{Hash: hash}
	var sealed []byte
	var created, seen, expires, idle int64
	err := s.ro().QueryRowContext(ctx, s.q(`SELECT kind, tenant_id, sub_id, name, csrf, step, secret, created_at, seen_at, expires_at, idle_us FROM sessions WHERE hash = ?`), hash).
		Scan(&se.Kind, &se.TenantID, &se.SubID, &se.Name, &se.CSRF, &se.Step, &sealed, &created, &seen, &expires, &idle)
	if err == sql.ErrNoRows {
		return store.Session{}, store.ErrSessionUnknown
	}
	if err != nil {
		return store.Session{}, err
	}
	se.CreatedAt, se.SeenAt, se.ExpiresAt, se.Idle = fromTS(created), fromTS(seen), fromTS(expires), time.Duration(idle)*time.Microsecond
	if !se.Live(now) {
		_ = s.DeleteSession(ctx, hash)
		return store.Session{}, store.ErrSessionUnknown
	}
	if se.Secret, err = s.sealer.open(sealed, sessionRowID(hash)); err != nil {
		return store.Session{}, err
	}
	if now.Sub(se.SeenAt) >= sessionTouch {
		if err := s.inTx(ctx, func(tx *txn) error {
			_, err := tx.ExecContext(ctx, s.q(`UPDATE sessions SET seen_at = ? WHERE hash = ?`), ts(now), hash)
			return err
		}); err != nil {
			return store.Session{}, err
		}
		se.SeenAt = now
	}
	return se, nil
}

// DeleteSession ends one session; an unknown one is not an error.
func (s *DB) DeleteSession(ctx context.Context, hash []byte) error {
	return s.inTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE hash = ?`), hash)
		return err
	})
}

// DeleteSessions ends every session of one account.
func (s *DB) DeleteSessions(ctx context.Context, tenantID, subID string) error {
	return s.inTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE tenant_id = ? AND sub_id = ?`), tenantID, subID)
		return err
	})
}
