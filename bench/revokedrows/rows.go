// Package revokedrows fills a SQLite (or, for the CRL, PostgreSQL) store with revoked devices for the
// benchmarks that check the proxy does not slow down or grow with them,
// and the CA's CRL for the issuance benchmarks.
package revokedrows

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Insert writes n revoked devices of one sub-account straight into
// the devices table (through the store API a million would take minutes).
func Insert(ctx context.Context, db *sql.DB, tenantID, subID string, n int) error {
	return insert(ctx, db, func(q string) string { return q }, tenantID, subID, n, false)
}

// InsertOnCRL writes n revoked devices as Insert does, and their
// revocations, each with its own policy seq, as the store's revocation
// does: the CA lists them on its CRL until they expire (in 30 days).
// rebind rewrites the '?' placeholders for the backend (the store's
// Rebind), so it fills PostgreSQL as well.
func InsertOnCRL(ctx context.Context, db *sql.DB, rebind func(string) string, tenantID, subID string, n int) error {
	return insert(ctx, db, rebind, tenantID, subID, n, true)
}

func insert(ctx context.Context, db *sql.DB, rebind func(string) string, tenantID, subID string, n int, onCRL bool) error {
	if n == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	seq := int64(1)
	if onCRL {
		if err := tx.QueryRowContext(ctx, rebind(`UPDATE policy_seq SET v = v + ? WHERE id = 1 RETURNING v - ?`), n, n).Scan(&seq); err != nil {
			return err
		}
	}
	dev, err := tx.PrepareContext(ctx, rebind(`INSERT INTO devices (id, tenant_id, sub_id, label, serial, fingerprint, status, issued_at, expires_at,
		enrolled_ip, enrolled_ua, last_seen_at, last_seen_ip, revoked_at, reason, change_seq) VALUES (?, ?, ?, '', ?, '00', 'revoked', ?, ?, '', '', 0, '', ?, 1, ?)`))
	if err != nil {
		return err
	}
	rev, err := tx.PrepareContext(ctx, rebind(`INSERT INTO revocations (seq, serial, tenant_id, sub_id, device_id, reason, revoked_at, expires_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)`))
	if err != nil {
		return err
	}
	now := time.Now().UnixMicro()
	expires := now + int64(30*24*time.Hour/time.Microsecond)
	for i := 0; i < n; i++ {
		id, serial := fmt.Sprintf("r%025d", i), fmt.Sprintf("%x", uint64(1)<<62+uint64(i))
		change := seq
		if onCRL {
			change = seq + int64(i) + 1
		}
		if _, err := dev.ExecContext(ctx, id, tenantID, subID, serial, now, expires, now, change); err != nil {
			return err
		}
		if !onCRL {
			continue
		}
		if _, err := rev.ExecContext(ctx, change, serial, tenantID, subID, id, now, expires); err != nil {
			return err
		}
	}
	return tx.Commit()
}
