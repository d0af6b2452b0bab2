package sqlstore

import (
	"context"
	"time"

	"github.com/devicegate/devicegate/store"
)

const revocationColumns = `seq, serial, tenant_id, sub_id, device_id, reason, revoked_at, expires_at`

func (s *DB) listRevocations(ctx context.Context, query string, args ...any) ([]store.Revocation, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Revocation{}
	for rows.Next() {
		var rv store.Revocation
		var revoked, expires int64
		if err := rows.Scan(&rv.Seq, &rv.Serial, &rv.TenantID, &rv.SubID, &rv.DeviceID, &rv.Reason, &revoked, &expires); err != nil {
			return nil, err
		}
		rv.RevokedAt, rv.ExpiresAt = fromTS(revoked), fromTS(expires)
		out = append(out, rv)
	}
	return out, rows.Err()
}

// RevocationsSince returns up to limit revocations with seq > afterSeq.
func (s *DB) RevocationsSince(ctx context.Context, afterSeq int64, limit int) ([]store.Revocation, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	return s.listRevocations(ctx, `SELECT `+revocationColumns+` FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
}

// RevocationsForCRL returns revocations of certificates not yet expired.
func (s *DB) RevocationsForCRL(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	return s.listRevocations(ctx, `SELECT `+revocationColumns+` FROM revocations WHERE expires_at > ? ORDER BY seq`, ts(now))
}
