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

// RevocationsForCRL returns revocations of certificates not yet expired:
// devices' and proxies' (those with no tenant, sub-account or device).
func (s *DB) RevocationsForCRL(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	return s.listRevocations(ctx, `SELECT `+revocationColumns+` FROM revocations WHERE expires_at > ?
		UNION ALL `+proxyRevocations+` AND not_after > ?
		ORDER BY 1`, ts(now), ts(now))
}

// proxyRevocations selects the revoked proxy certificates in the columns
// of revocationColumns; the caller adds conditions with AND.
const proxyRevocations = `SELECT revoke_seq, serial, '', '', '', reason, revoked_at, not_after FROM proxy_certs WHERE revoked_at <> 0`

// ProxyRevocationsSince returns the proxy certificates revoked with a seq
// > afterSeq. Proxies are few, so there is no page limit.
func (s *DB) ProxyRevocationsSince(ctx context.Context, afterSeq int64) ([]store.Revocation, error) {
	return s.listRevocations(ctx, proxyRevocations+` AND revoke_seq > ? ORDER BY revoke_seq, serial`, afterSeq)
}

// PolicyChangesSince reads the seq first, then the rows: a change that
// commits in between is included or comes again next time, never lost.
func (s *DB) PolicyChangesSince(ctx context.Context, afterSeq int64) (store.PolicyChanges, error) {
	cur, err := s.CurrentSeq(ctx)
	if err != nil {
		return store.PolicyChanges{}, err
	}
	out := store.PolicyChanges{Seq: cur}
	if cur <= afterSeq {
		return out, nil
	}
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.change_seq > ? ORDER BY s.change_seq`), afterSeq)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := s.scanSub(rows)
		if err != nil {
			return out, err
		}
		a.TOTPSecret, a.PasswordHash = nil, "" // a proxy needs neither
		out.SubAccounts = append(out.SubAccounts, a)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	if err := s.withPositions(ctx, out.SubAccounts); err != nil {
		return out, err
	}
	if afterSeq == 0 {
		// A first load needs only the active devices: revoked ones (there
		// may be millions) decide nothing and would only cost memory.
		out.Devices, err = s.policyDevices(ctx, 0, `status = ?`, store.DeviceActive)
		return out, err
	}
	out.Devices, err = s.policyDevices(ctx, int(min(cur-afterSeq, maxChangesHint)), `change_seq > ?`, afterSeq)
	return out, err
}

// maxChangesHint bounds the room made for the changed devices before
// reading them: every change takes a seq, so at most cur-afterSeq devices
// changed up to cur (a few more may commit meanwhile and are appended).
const maxChangesHint = 1 << 18

// policyDeviceColumns are the device columns a decision reads (see
// store.PolicyChanges).
const policyDeviceColumns = `id, tenant_id, sub_id, serial, status, expires_at, change_seq`

// policyDevices reads the devices matching where, in policyDeviceColumns,
// into a slice with room for hint of them. In no particular order: a
// device is one row, so the order changes nothing for a snapshot, and
// sorting 100,000 rows made PostgreSQL spill to disk. With the narrow
// columns and the room made first, a proxy's catch-up after 100,000
// revocations took a quarter of the CPU (bench/README.md, CatchUpPostgres).
func (s *DB) policyDevices(ctx context.Context, hint int, where string, arg any) ([]store.Device, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+policyDeviceColumns+` FROM devices WHERE `+where), arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Device
	if hint > 0 {
		out = make([]store.Device, 0, hint)
	}
	for rows.Next() {
		var d store.Device
		var expires int64
		if err := rows.Scan(&d.ID, &d.TenantID, &d.SubID, &d.Serial, &d.Status, &expires, &d.ChangeSeq); err != nil {
			return nil, err
		}
		d.ExpiresAt = fromTS(expires)
		out = append(out, d)
	}
	return out, rows.Err()
}
