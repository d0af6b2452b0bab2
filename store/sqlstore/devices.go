package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

const deviceColumns = `id, tenant_id, sub_id, label, serial, fingerprint, key_id, status, issued_at, expires_at, enrolled_ip, enrolled_ua,
	last_seen_at, last_seen_ip, revoked_at, reason, COALESCE(renew_allowed_until, 0), change_seq`

func scanDevice(row scanner) (store.Device, error) {
	var d store.Device
	var issued, expires, seen, revoked, renewAllowed int64
	err := row.Scan(&d.ID, &d.TenantID, &d.SubID, &d.Label, &d.Serial, &d.Fingerprint, &d.KeyID, &d.Status, &issued, &expires,
		&d.EnrolledIP, &d.EnrolledUA, &seen, &d.LastSeenIP, &revoked, &d.Reason, &renewAllowed, &d.ChangeSeq)
	if err != nil {
		return d, notFound(err, "device")
	}
	d.IssuedAt, d.ExpiresAt, d.LastSeenAt, d.RevokedAt = fromTS(issued), fromTS(expires), fromTS(seen), fromTS(revoked)
	d.RenewAllowedUntil = fromTS(renewAllowed)
	return d, nil
}

func scanDevices(rows *sql.Rows, err error) ([]store.Device, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// activeDevices lists the devices holding a quota slot at now.
func (s *DB) activeDevices(ctx context.Context, q querier, subID string, now time.Time) ([]store.Device, error) {
	return scanDevices(q.QueryContext(ctx, s.q(`SELECT `+deviceColumns+` FROM devices WHERE sub_id = ? AND status = ? AND expires_at > ? ORDER BY issued_at`),
		subID, store.DeviceActive, ts(now)))
}

// lockSub locks the sub-account row for the rest of the transaction.
func (s *DB) lockSub(ctx context.Context, tx *txn, tenantID, subID string) (store.SubAccount, error) {
	lock := s.d.ForUpdate
	if lock != "" {
		// Only the sub-account's row: the joined tenant row would queue
		// every write of the store behind each other, and inside a group
		// commit turn it into a growing MultiXact.
		lock += " OF s"
	}
	sub, err := s.scanSub(tx.QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.id = ?`+lock), subID))
	return ofStore(tenantID, sub, err)
}

// ofStore refuses a sub-account read by its id alone that is not of the
// store tenantID, as if it did not exist. Hot statements look a
// sub-account up by its primary key only: with the store's id in the same
// WHERE, PostgreSQL without statistics (a table filled since its last
// ANALYZE) rated the (tenant_id, role) index as good as the key and read
// every sub-account of the store, 1,000 rows per issuance in a large one.
func ofStore(tenantID string, sub store.SubAccount, err error) (store.SubAccount, error) {
	if err == nil && sub.TenantID != tenantID {
		return store.SubAccount{}, fmt.Errorf("sub-account: %w", store.ErrNotFound)
	}
	return sub, err
}

func checkCert(serial, fingerprint, keyID string, issued, expires time.Time) error {
	switch {
	case serial == "" || len(serial) > 64 || strings.Trim(serial, "0123456789abcdef") != "":
		return invalid("serial must be lower-case hex")
	case len(keyID) > 64 || strings.Trim(keyID, "0123456789abcdef") != "":
		return invalid("key id must be lower-case hex")
	case fingerprint == "" || len(fingerprint) > 128:
		return invalid("fingerprint is required")
	case issued.IsZero() || !expires.After(issued):
		return invalid("certificate validity is empty")
	}
	return nil
}

// checkDER refuses a stored certificate that is not the one fingerprinted.
func checkDER(der []byte, fingerprint string) error {
	if der == nil {
		return nil
	}
	sum := sha256.Sum256(der)
	if hex.EncodeToString(sum[:]) != fingerprint {
		return invalid("certificate does not match its fingerprint")
	}
	return nil
}

// IssueDevice is the quota gate (see store.Store).
func (s *DB) IssueDevice(ctx context.Context, r store.IssueRequest, actor store.Actor) (store.Device, int, error) {
	if r.DeviceID == "" || r.TenantID == "" || r.SubID == "" {
		return store.Device{}, 0, invalid("tenant, sub-account and device ids are required")
	}
	if err := checkCert(r.Serial, r.Fingerprint, r.KeyID, r.IssuedAt, r.ExpiresAt); err != nil {
		return store.Device{}, 0, err
	}
	if err := checkDER(r.CertDER, r.Fingerprint); err != nil {
		return store.Device{}, 0, err
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	d := store.Device{ID: r.DeviceID, TenantID: r.TenantID, SubID: r.SubID, Label: r.Label, Serial: r.Serial, Fingerprint: r.Fingerprint,
		KeyID: r.KeyID, Status: store.DeviceActive, IssuedAt: fromTS(ts(r.IssuedAt)), ExpiresAt: fromTS(ts(r.ExpiresAt)), EnrolledIP: r.EnrolledIP, EnrolledUA: r.EnrolledUA}
	var active int
	err := s.inTx(ctx, func(tx *txn) error {
		issue := s.issueStepwise
		if s.d.SeqCTE != "" {
			issue = s.issueInOneStatement
		}
		sub, n, err := issue(ctx, tx, r, &d)
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("device or serial: %w", store.ErrDuplicate)
			}
			return err
		}
		active = n
		return s.audit(ctx, tx, r.TenantID, actor, "device.issue", sub.FullName(), map[string]string{
			"device": d.ID, "serial": d.Serial, "label": d.Label, "expires": timeText(d.ExpiresAt),
			"installed": fmt.Sprintf("%d/%d", active+1, sub.Protection.MaxDevices),
		})
	})
	if err != nil {
		return store.Device{}, 0, err
	}
	return d, active + 1, nil
}

const insertDeviceSQL = `INSERT INTO devices (id, tenant_id, sub_id, label, serial, fingerprint, key_id, status, issued_at, expires_at,
	enrolled_ip, enrolled_ua, last_seen_at, last_seen_ip, revoked_at, reason, change_seq, cert_der) `

// deviceValues are the values of insertDeviceSQL's first 12 columns.
func deviceValues(d *store.Device) []any {
	return []any{d.ID, d.TenantID, d.SubID, d.Label, d.Serial, d.Fingerprint, d.KeyID, d.Status, ts(d.IssuedAt), ts(d.ExpiresAt), d.EnrolledIP, d.EnrolledUA}
}

// quotaCountsSQL counts the sub-account's active devices (active) and the
// active devices that hold the request's key (holders), with
// quotaCountsArgs, for insertDeviceStepwise. PostgreSQL's migration 013
// defines the same two counts as functions, for issueInOneStatement.
const quotaCountsSQL = `(SELECT COUNT(*) FROM devices WHERE sub_id = ? AND status = ? AND expires_at > ?) AS active,
	(SELECT COUNT(*) FROM devices WHERE key_id = ? AND status = ? AND expires_at > ?) AS holders`

func quotaCountsArgs(r store.IssueRequest) []any {
	return []any{r.SubID, store.DeviceActive, ts(r.Now), keyOrNone(r.KeyID), store.DeviceActive, ts(r.Now)}
}

// issueRefusal checks an issuance's counts in the order the refusals are
// told: a key that is already certified first (a replayed request is told
// so, not that the quota is full), then the quota.
func issueRefusal(active, holders, maxDevices int) error {
	switch {
	case holders > 0:
		return store.ErrKeyInUse
	case active >= maxDevices:
		return store.ErrQuotaExceeded
	}
	return nil
}

// issueInOneStatement locks the sub-account, counts, consumes the ticket,
// bumps the policy seq (with its notification) and inserts the device in
// one round trip (PostgreSQL). The device is inserted, and the seq bumped,
// only when the key holds no device, the quota has room and the ticket (if
// any) was consumed by this very statement. The counts are migration 013's
// functions, whose fresh snapshots see what was committed while the lock
// was awaited. Eligibility is checked on the locked row after the insert:
// a refusal returns an error, which rolls the whole transaction function
// back. It returns the sub-account and its active devices before this one.
func (s *DB) issueInOneStatement(ctx context.Context, tx *txn, r store.IssueRequest, d *store.Device) (store.SubAccount, int, error) {
	wantConsumed := 0
	if r.TicketHash != nil {
		wantConsumed = 1
	}
	var active, holders, consumed int
	var seq sql.NullInt64
	sub, err := s.scanSub(scanWith{tx.QueryRowContext(ctx, s.q(`WITH l AS MATERIALIZED (SELECT `+subColumns+subFrom+`WHERE s.id = ?`+s.d.ForUpdate+` OF s),
		c AS (`+consumeTicketSQL+` AND EXISTS (SELECT 1 FROM l) RETURNING 1),
		k AS (SELECT devicegate_active_devices(l.id, ?, ?) AS active, devicegate_key_holders(?, ?, ?) AS holders,
			(SELECT COUNT(*) FROM c) AS consumed, l.max_devices FROM l),
		ok AS (SELECT 1 FROM k, l WHERE k.holders = 0 AND k.active < k.max_devices AND k.consumed = ? AND l.tenant_id = ?),
		`+s.d.SeqCTE+`,
		i AS (`+insertDeviceSQL+`SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', 0, 0, s.v, ? FROM s, n RETURNING change_seq)
		SELECT l.*, k.active, k.holders, k.consumed, (SELECT change_seq FROM i) FROM l, k`),
		append(append([]any{r.SubID, ts(r.Now), r.TicketHash, r.TenantID, r.SubID, ts(r.Now),
			store.DeviceActive, ts(r.Now), keyOrNone(r.KeyID), store.DeviceActive, ts(r.Now), wantConsumed, r.TenantID},
			deviceValues(d)...), r.CertDER)...), []any{&active, &holders, &consumed, &seq}})
	if sub, err = ofStore(r.TenantID, sub, err); err != nil {
		return sub, 0, err
	}
	if err := store.Eligible(sub, r.Now, r.ExpiresAt); err != nil {
		return sub, 0, err
	}
	if err := issueRefusal(active, holders, sub.Protection.MaxDevices); err != nil {
		return sub, 0, err
	}
	if consumed != wantConsumed {
		return sub, 0, s.ticketRefusal(ctx, tx, r.TicketHash, r.TenantID, r.SubID, r.Now)
	}
	if !seq.Valid {
		return sub, 0, errors.New("issue: the device was not inserted")
	}
	d.ChangeSeq = seq.Int64
	return sub, active, nil
}

// issueStepwise is issueInOneStatement one statement at a time, for a
// database whose writes cannot run inside WITH (SQLite, where the write
// transaction holds the whole database).
func (s *DB) issueStepwise(ctx context.Context, tx *txn, r store.IssueRequest, d *store.Device) (store.SubAccount, int, error) {
	sub, err := s.lockSub(ctx, tx, r.TenantID, r.SubID)
	if err != nil {
		return sub, 0, err
	}
	if err := store.Eligible(sub, r.Now, r.ExpiresAt); err != nil {
		return sub, 0, err
	}
	active, err := s.insertDeviceStepwise(ctx, tx, r, d, sub.Protection.MaxDevices)
	return sub, active, err
}

// insertDeviceStepwise counts, consumes the ticket, bumps the policy seq
// and inserts the device, a statement each, after issueStepwise's lock.
func (s *DB) insertDeviceStepwise(ctx context.Context, tx *txn, r store.IssueRequest, d *store.Device, maxDevices int) (int, error) {
	var active, holders int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT `+quotaCountsSQL), quotaCountsArgs(r)...).Scan(&active, &holders); err != nil {
		return 0, err
	}
	if err := issueRefusal(active, holders, maxDevices); err != nil {
		return 0, err
	}
	if r.TicketHash != nil {
		if err := s.consumeTicket(ctx, tx, r.TicketHash, r.TenantID, r.SubID, r.Now); err != nil {
			return 0, err
		}
	}
	seq, err := s.nextSeq(ctx, tx)
	if err != nil {
		return 0, err
	}
	d.ChangeSeq = seq
	_, err = tx.ExecContext(ctx, s.q(insertDeviceSQL+`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', 0, 0, ?, ?)`), append(deviceValues(d), seq, r.CertDER)...)
	return active, err
}

// RenewDevice swaps the certificate of an active device in place.
func (s *DB) RenewDevice(ctx context.Context, r store.RenewRequest, actor store.Actor) (store.Device, store.Revocation, error) {
	if err := checkCert(r.Serial, r.Fingerprint, r.KeyID, r.IssuedAt, r.ExpiresAt); err != nil {
		return store.Device{}, store.Revocation{}, err
	}
	if err := checkDER(r.CertDER, r.Fingerprint); err != nil {
		return store.Device{}, store.Revocation{}, err
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	var d store.Device
	var rv store.Revocation
	err := s.inTx(ctx, func(tx *txn) error {
		var sub store.SubAccount
		var err error
		if d, sub, err = s.lockDevice(ctx, tx, r.TenantID, r.DeviceID); err != nil {
			return err
		}
		if !d.ActiveAt(r.Now) {
			return store.ErrDeviceInactive
		}
		if d.Serial != r.OldSerial {
			return store.ErrStale
		}
		if err := store.Eligible(sub, r.Now, r.ExpiresAt); err != nil {
			return err
		}
		if err := s.keyFree(ctx, tx, r.KeyID, d.ID, r.Now); err != nil {
			return err
		}
		if rv, err = s.insertRevocation(ctx, tx, d, store.ReasonSuperseded, r.Now); err != nil {
			return err
		}
		seq, err := s.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		// The renewal uses up the owner's permission for an early one.
		_, err = tx.ExecContext(ctx, s.q(`UPDATE devices SET serial = ?, fingerprint = ?, key_id = ?, issued_at = ?, expires_at = ?, change_seq = ?, cert_der = ?,
			renew_allowed_until = NULL WHERE id = ?`),
			r.Serial, r.Fingerprint, r.KeyID, ts(r.IssuedAt), ts(r.ExpiresAt), seq, r.CertDER, d.ID)
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("serial: %w", store.ErrDuplicate)
			}
			return err
		}
		d.Serial, d.Fingerprint, d.KeyID, d.IssuedAt, d.ExpiresAt = r.Serial, r.Fingerprint, r.KeyID, fromTS(ts(r.IssuedAt)), fromTS(ts(r.ExpiresAt))
		d.RenewAllowedUntil, d.ChangeSeq = time.Time{}, seq
		return s.audit(ctx, tx, r.TenantID, actor, "device.renew", sub.FullName(), map[string]string{"device": d.ID, "old_serial": r.OldSerial, "serial": d.Serial})
	})
	if err != nil {
		return store.Device{}, store.Revocation{}, err
	}
	return d, rv, nil
}

// AllowEarlyRenewal lets an active device of the tenant renew once before
// its certificate is near its end (see store.Store).
func (s *DB) AllowEarlyRenewal(ctx context.Context, tenantID, deviceID string, until time.Time, actor store.Actor) (store.Device, error) {
	now := time.Now()
	if tenantID == "" || deviceID == "" {
		return store.Device{}, invalid("tenant and device ids are required")
	}
	if !until.After(now) || until.After(now.Add(store.MaxRenewAllowance)) {
		return store.Device{}, invalid("early renewal may be allowed for up to %v", store.MaxRenewAllowance)
	}
	var d store.Device
	err := s.inTx(ctx, func(tx *txn) error {
		var sub store.SubAccount
		var err error
		if d, sub, err = s.lockDevice(ctx, tx, tenantID, deviceID); err != nil {
			return err
		}
		if !d.ActiveAt(now) {
			return store.ErrDeviceInactive
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET renew_allowed_until = ? WHERE tenant_id = ? AND id = ?`), ts(until), tenantID, d.ID); err != nil {
			return err
		}
		d.RenewAllowedUntil = fromTS(ts(until))
		return s.audit(ctx, tx, tenantID, actor, "device.renew_allowed", sub.FullName(), map[string]string{
			"device": d.ID, "serial": d.Serial, "until": timeText(d.RenewAllowedUntil),
		})
	})
	if err != nil {
		return store.Device{}, err
	}
	return d, nil
}

// RedeliverDevice hands out a recorded certificate again (see store.Store).
func (s *DB) RedeliverDevice(ctx context.Context, r store.RedeliverRequest, actor store.Actor) (store.Device, []byte, error) {
	if r.TenantID == "" || r.SubID == "" || r.KeyID == "" || r.IssuedFrom.IsZero() || r.IssuedTo.Before(r.IssuedFrom) {
		return store.Device{}, nil, invalid("tenant, sub-account, key and issue window are required")
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	var d store.Device
	var der []byte
	err := s.inTx(ctx, func(tx *txn) error {
		sub, err := s.lockSub(ctx, tx, r.TenantID, r.SubID)
		if err != nil {
			return err
		}
		if store.Eligible(sub, r.Now, time.Time{}) != nil {
			return fmt.Errorf("device: %w", store.ErrNotFound)
		}
		row := tx.QueryRowContext(ctx, s.q(`SELECT `+deviceColumns+`, cert_der FROM devices
			WHERE tenant_id = ? AND sub_id = ? AND key_id = ? AND status = ? AND expires_at > ? AND issued_at >= ? AND issued_at <= ?
			AND last_seen_at = 0 AND cert_der IS NOT NULL`),
			r.TenantID, r.SubID, r.KeyID, store.DeviceActive, ts(r.Now), ts(r.IssuedFrom), ts(r.IssuedTo))
		if d, err = scanDevice(scanWith{row, []any{&der}}); err != nil {
			return err
		}
		if len(der) == 0 || checkDER(der, d.Fingerprint) != nil {
			return fmt.Errorf("device: %w", store.ErrNotFound)
		}
		return s.audit(ctx, tx, r.TenantID, actor, "device.redelivered", sub.FullName(), map[string]string{"device": d.ID, "serial": d.Serial})
	})
	if err != nil {
		return store.Device{}, nil, err
	}
	return d, der, nil
}

// scanWith scans a row followed by extra columns.
type scanWith struct {
	row   scanner
	extra []any
}

func (w scanWith) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra...)...) }

// keyFree refuses a key that an active device other than exceptID holds
// (in any store: the key's owner proved possession, so this tells nothing
// new). Checked inside the issuing transaction, after the sub-account lock.
func (s *DB) keyFree(ctx context.Context, tx *txn, keyID, exceptID string, now time.Time) error {
	if keyID == "" {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM devices WHERE key_id = ? AND status = ? AND expires_at > ? AND id <> ?`),
		keyID, store.DeviceActive, ts(now), exceptID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return store.ErrKeyInUse
	}
	return nil
}

// keyOrNone is keyID, or for a device without one a value that no key id
// matches (key ids are hex): such a device holds no key to collide with.
func keyOrNone(keyID string) string {
	if keyID == "" {
		return "none"
	}
	return keyID
}

// insertRevocation records the revocation of d's current serial.
func (s *DB) insertRevocation(ctx context.Context, tx *txn, d store.Device, reason store.RevocationReason, now time.Time) (store.Revocation, error) {
	seq, err := s.nextSeq(ctx, tx)
	if err != nil {
		return store.Revocation{}, err
	}
	rv := store.Revocation{Seq: seq, Serial: d.Serial, TenantID: d.TenantID, SubID: d.SubID, DeviceID: d.ID, Reason: reason,
		RevokedAt: fromTS(ts(now)), ExpiresAt: d.ExpiresAt}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO revocations (seq, serial, tenant_id, sub_id, device_id, reason, revoked_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		rv.Seq, rv.Serial, rv.TenantID, rv.SubID, rv.DeviceID, int(rv.Reason), ts(rv.RevokedAt), ts(rv.ExpiresAt))
	return rv, err
}

// revokeDevice marks an active device revoked inside tx.
func (s *DB) revokeDevice(ctx context.Context, tx *txn, d store.Device, reason store.RevocationReason, now time.Time) (store.Revocation, error) {
	rv, err := s.insertRevocation(ctx, tx, d, reason, now)
	if err != nil {
		return rv, err
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET status = ?, revoked_at = ?, reason = ?, change_seq = ? WHERE id = ? AND status = ?`),
		store.DeviceRevoked, ts(now), int(reason), rv.Seq, d.ID, store.DeviceActive)
	if err != nil {
		return rv, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return rv, store.ErrDeviceInactive
	}
	return rv, nil
}

func validReason(r store.RevocationReason) bool {
	switch r {
	case store.ReasonUnspecified, store.ReasonKeyCompromise, store.ReasonAffiliationChanged, store.ReasonSuperseded,
		store.ReasonCessationOfOperation, store.ReasonCertificateHold, store.ReasonPrivilegeWithdrawn:
		return true
	}
	return false
}

// RevokeDevice revokes one active device of the tenant.
func (s *DB) RevokeDevice(ctx context.Context, tenantID, deviceID string, reason store.RevocationReason, actor store.Actor) (store.Revocation, error) {
	if !validReason(reason) {
		return store.Revocation{}, invalid("revocation reason %d", reason)
	}
	var rv store.Revocation
	err := s.inTx(ctx, func(tx *txn) error {
		d, err := s.deviceTx(ctx, tx, tenantID, deviceID)
		if err != nil {
			return err
		}
		sub, err := s.lockSub(ctx, tx, tenantID, d.SubID)
		if err != nil {
			return err
		}
		if d.Status != store.DeviceActive {
			return store.ErrDeviceInactive
		}
		if rv, err = s.revokeDevice(ctx, tx, d, reason, time.Now()); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, actor, "device.revoke", sub.FullName(), map[string]string{"device": d.ID, "serial": d.Serial, "reason": fmt.Sprint(int(reason))})
	})
	return rv, err
}

// revokeAll revokes every active (even expired) device of a locked sub-account.
func (s *DB) revokeAll(ctx context.Context, tx *txn, sub *store.SubAccount, reason store.RevocationReason, actor store.Actor) ([]store.Revocation, error) {
	devs, err := scanDevices(tx.QueryContext(ctx, s.q(`SELECT `+deviceColumns+` FROM devices WHERE sub_id = ? AND status = ? ORDER BY issued_at`), sub.ID, store.DeviceActive))
	if err != nil {
		return nil, err
	}
	revs := []store.Revocation{}
	now := time.Now()
	for _, d := range devs {
		rv, err := s.revokeDevice(ctx, tx, d, reason, now)
		if err != nil {
			return nil, err
		}
		if err := s.audit(ctx, tx, sub.TenantID, actor, "device.revoke", sub.FullName(), map[string]string{"device": d.ID, "serial": d.Serial, "reason": fmt.Sprint(int(reason))}); err != nil {
			return nil, err
		}
		revs = append(revs, rv)
	}
	return revs, nil
}

// RevokeSubAccountDevices revokes every active device of a sub-account.
func (s *DB) RevokeSubAccountDevices(ctx context.Context, tenantID, subID string, reason store.RevocationReason, actor store.Actor) ([]store.Revocation, error) {
	if !validReason(reason) {
		return nil, invalid("revocation reason %d", reason)
	}
	var revs []store.Revocation
	err := s.inTx(ctx, func(tx *txn) error {
		sub, err := s.lockSub(ctx, tx, tenantID, subID)
		if err != nil {
			return err
		}
		revs, err = s.revokeAll(ctx, tx, &sub, reason, actor)
		return err
	})
	return revs, err
}

// GetDevice returns a device of the tenant.
func (s *DB) GetDevice(ctx context.Context, tenantID, deviceID string) (store.Device, error) {
	return scanDevice(s.ro().QueryRowContext(ctx, s.q(`SELECT `+deviceColumns+` FROM devices WHERE tenant_id = ? AND id = ?`), tenantID, deviceID))
}

// ListDevices lists a sub-account's devices by issue time.
func (s *DB) ListDevices(ctx context.Context, tenantID, subID string) ([]store.Device, error) {
	return scanDevices(s.ro().QueryContext(ctx, s.q(`SELECT `+deviceColumns+` FROM devices WHERE tenant_id = ? AND sub_id = ? ORDER BY issued_at, id`), tenantID, subID))
}

// CountActiveDevices counts active, unexpired devices of a sub-account.
func (s *DB) CountActiveDevices(ctx context.Context, tenantID, subID string, now time.Time) (int, error) {
	var n int
	err := s.ro().QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM devices WHERE tenant_id = ? AND sub_id = ? AND status = ? AND expires_at > ?`),
		tenantID, subID, store.DeviceActive, ts(now)).Scan(&n)
	return n, err
}

// FindDevice looks up by device id or serial across tenants.
func (s *DB) FindDevice(ctx context.Context, idOrSerial string) (store.Device, error) {
	if idOrSerial == "" || len(idOrSerial) > 128 {
		return store.Device{}, invalid("device id or serial is required")
	}
	serial := strings.TrimLeft(strings.ToLower(strings.ReplaceAll(idOrSerial, ":", "")), "0")
	return scanDevice(s.ro().QueryRowContext(ctx, s.q(`SELECT `+deviceColumns+` FROM devices WHERE id = ? OR serial = ? LIMIT 1`), idOrSerial, serial))
}

// TouchDevice records when and from where a device was last seen.
func (s *DB) TouchDevice(ctx context.Context, tenantID, deviceID string, at time.Time, ip string) error {
	res, err := s.ro().ExecContext(ctx, s.q(`UPDATE devices SET last_seen_at = ?, last_seen_ip = ? WHERE tenant_id = ? AND id = ?`), ts(at), ip, tenantID, deviceID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("device: %w", store.ErrNotFound)
	}
	return nil
}

// deviceTx reads one device of the tenant inside tx.
func (s *DB) deviceTx(ctx context.Context, tx *txn, tenantID, deviceID string) (store.Device, error) {
	return scanDevice(tx.QueryRowContext(ctx, s.q(`SELECT `+deviceColumns+` FROM devices WHERE tenant_id = ? AND id = ?`), tenantID, deviceID))
}

// lockDevice locks the sub-account of a device of the tenant and returns
// both, the device read again under the lock: a concurrent revoke or
// renew wins.
func (s *DB) lockDevice(ctx context.Context, tx *txn, tenantID, deviceID string) (store.Device, store.SubAccount, error) {
	d, err := s.deviceTx(ctx, tx, tenantID, deviceID)
	if err != nil {
		return store.Device{}, store.SubAccount{}, err
	}
	sub, err := s.lockSub(ctx, tx, tenantID, d.SubID)
	if err != nil {
		return store.Device{}, store.SubAccount{}, err
	}
	if d, err = s.deviceTx(ctx, tx, tenantID, deviceID); err != nil {
		return store.Device{}, store.SubAccount{}, err
	}
	return d, sub, nil
}
