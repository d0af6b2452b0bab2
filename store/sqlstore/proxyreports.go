package sqlstore

import (
	"context"
	"time"

	"github.com/devicegate/devicegate/store"
)

// ReportProxy upserts the proxy's row in one statement. Reports of one
// proxy can arrive out of order (through two CA nodes), so seq and seen_at
// only move forward; applied_at moves with seq. PostgreSQL then announces
// the report (Dialect.ReportNotifySQL) to whoever waits for a revocation.
func (s *DB) ReportProxy(ctx context.Context, r store.ProxyReport) error {
	if r.Name == "" || len(r.Name) > 256 || r.Seq < 0 || r.SeenAt.IsZero() ||
		r.Heartbeat <= 0 || r.Heartbeat > store.MaxProxyHeartbeat || (r.Via != store.ViaStore && r.Via != store.ViaFeed) {
		return invalid("proxy report needs a name, a seq >= 0, a time, a heartbeat up to %s and a source", store.MaxProxyHeartbeat)
	}
	args := []any{r.Name, r.Seq, ts(r.SeenAt), ts(r.SeenAt), r.Heartbeat.Microseconds(), r.Via}
	if s.d.ReportNotifySQL != "" && s.d.WritesInWith {
		// The upsert and its notification in one statement, committed
		// together: one round trip where a transaction took four, on the
		// path from a proxy's applying a revocation to revoke --wait.
		_, err := s.ro().ExecContext(ctx, s.q(`WITH r AS (`+reportUpsert+`) `+s.d.ReportNotifySQL), append(args, r.Name)...)
		return err
	}
	return s.inTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, s.q(reportUpsert), args...)
		if err != nil || s.d.ReportNotifySQL == "" {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(s.d.ReportNotifySQL), r.Name)
		return err
	})
}

// reportUpsert writes a proxy report (ReportProxy), arguments name, seq,
// seen_at, applied_at, heartbeat, via.
const reportUpsert = `INSERT INTO proxy_reports (name, seq, seen_at, applied_at, heartbeat, via) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (name) DO UPDATE SET
		applied_at = CASE WHEN excluded.seq > proxy_reports.seq THEN excluded.seen_at ELSE proxy_reports.applied_at END,
		seq = CASE WHEN excluded.seq > proxy_reports.seq THEN excluded.seq ELSE proxy_reports.seq END,
		seen_at = CASE WHEN excluded.seen_at > proxy_reports.seen_at THEN excluded.seen_at ELSE proxy_reports.seen_at END,
		heartbeat = excluded.heartbeat, via = excluded.via`

// ListProxyReports lists every proxy's last report, by name.
func (s *DB) ListProxyReports(ctx context.Context) ([]store.ProxyReport, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT name, seq, seen_at, applied_at, heartbeat, via FROM proxy_reports ORDER BY name`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.ProxyReport{}
	for rows.Next() {
		var r store.ProxyReport
		var seen, applied, hb int64
		if err := rows.Scan(&r.Name, &r.Seq, &seen, &applied, &hb, &r.Via); err != nil {
			return nil, err
		}
		r.SeenAt, r.AppliedAt, r.Heartbeat = fromTS(seen), fromTS(applied), time.Duration(hb)*time.Microsecond
		out = append(out, r)
	}
	return out, rows.Err()
}
