// Package revokedrows fills a SQLite store with revoked devices for the
// benchmarks that check the proxy does not slow down or grow with them.
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
	if n == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO devices (id, tenant_id, sub_id, label, serial, fingerprint, status, issued_at, expires_at,
		enrolled_ip, enrolled_ua, last_seen_at, last_seen_ip, revoked_at, reason, change_seq) VALUES (?, ?, ?, '', ?, '00', 'revoked', ?, ?, '', '', 0, '', ?, 1, 1)`)
	if err != nil {
		return err
	}
	now := time.Now().UnixMicro()
	for i := 0; i < n; i++ {
		if _, err := st.ExecContext(ctx, fmt.Sprintf("r%025d", i), tenantID, subID, fmt.Sprintf("%x", uint64(1)<<62+uint64(i)), now, now+int64(time.Hour/time.Microsecond), now); err != nil {
			return err
		}
	}
	return tx.Commit()
}
