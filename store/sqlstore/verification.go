package sqlstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strconv"
	"time"

	"github.com/devicegate/devicegate/store"
)

// personKey derives the key of person hashes from the seal key, which
// every node of an installation shares (a key of its own would split the
// one-person-per-store rule between nodes).
func personKey(sealKey []byte) []byte {
	m := hmac.New(sha256.New, sealKey)
	m.Write([]byte("devicegate person hash v1"))
	return m.Sum(nil)
}

// personHash is the keyed hash of one normalized field of a person, bound
// to its store and kind: equal inputs match only within one store.
func (s *DB) personHash(tenantID, kind, value string) []byte {
	m := hmac.New(sha256.New, s.person)
	for _, f := range []string{tenantID, kind, value} {
		m.Write([]byte(strconv.Itoa(len(f)) + ":" + f))
	}
	return m.Sum(nil)
}

func linkHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

const verifyColumns = `v.tenant_id, v.sub_id, t.name, s.name, v.state, v.deadline, s.verify_frozen, v.link, v.started_at, v.submitted_at,
	v.decided_at, v.reason, v.holder, v.id_hash IS NOT NULL, v.unfreezes, v.updated_at`

const verifyFrom = ` FROM verifications v JOIN sub_accounts s ON s.id = v.sub_id JOIN tenants t ON t.id = v.tenant_id `

func (s *DB) scanVerification(row scanner) (store.Verification, error) {
	var v store.Verification
	var storeName, sub string
	var frozen int
	var bound bool
	var sealed []byte
	var deadline, started, submitted, decided, updated int64
	err := row.Scan(&v.TenantID, &v.SubID, &storeName, &sub, &v.State, &deadline, &frozen, &sealed, &started, &submitted,
		&decided, &v.Reason, &v.Holder, &bound, &v.Unfreezes, &updated)
	if err != nil {
		return v, notFound(err, "verification")
	}
	v.SubName, v.Frozen, v.Bound = storeName+":"+sub, frozen == 1, bound
	v.Deadline, v.StartedAt, v.SubmittedAt, v.DecidedAt, v.UpdatedAt = fromTS(deadline), fromTS(started), fromTS(submitted), fromTS(decided), fromTS(updated)
	link, err := s.sealer.open(sealed, "verify:"+v.SubID)
	v.Link = string(link)
	return v, err
}

// requireVerification creates the record of a new sub-account that must
// verify by deadline (zero: it need not), inside CreateSubAccount's tx.
func (s *DB) requireVerification(ctx context.Context, tx *txn, tenantID, subID, fullName string, deadline time.Time, actor store.Actor) error {
	if deadline.IsZero() {
		return nil
	}
	link := store.NewID()
	now := ts(time.Now())
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO verifications (sub_id, tenant_id, state, deadline, link_hash, link, started_at, submitted_at,
		decided_at, reason, holder, id_hash, phone_hash, unfreezes, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, '', '', NULL, NULL, 0, ?)`),
		subID, tenantID, store.VerifyNotStarted, ts(deadline), linkHash(link), s.sealer.seal([]byte(link), "verify:"+subID), now)
	if err != nil {
		return err
	}
	return s.audit(ctx, tx, tenantID, actor, "verify.required", fullName, map[string]string{"deadline": timeText(deadline)})
}

// GetVerification returns a sub-account's verification record.
func (s *DB) GetVerification(ctx context.Context, tenantID, subID string) (store.Verification, error) {
	return s.scanVerification(s.ro().QueryRowContext(ctx, s.q(`SELECT `+verifyColumns+verifyFrom+`WHERE v.tenant_id = ? AND v.sub_id = ?`), tenantID, subID))
}

// VerificationByLink finds a record by its link's hash, in any store.
func (s *DB) VerificationByLink(ctx context.Context, hash []byte) (store.Verification, error) {
	if len(hash) != sha256.Size {
		return store.Verification{}, invalid("a link hash is a SHA-256")
	}
	return s.scanVerification(s.ro().QueryRowContext(ctx, s.q(`SELECT `+verifyColumns+verifyFrom+`WHERE v.link_hash = ?`), hash))
}

func (s *DB) listVerifications(ctx context.Context, where string, args ...any) ([]store.Verification, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+verifyColumns+verifyFrom+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Verification
	for rows.Next() {
		v, err := s.scanVerification(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ListVerifications lists a store's records by sub-account name.
func (s *DB) ListVerifications(ctx context.Context, tenantID string) ([]store.Verification, error) {
	return s.listVerifications(ctx, `WHERE v.tenant_id = ? ORDER BY s.name`, tenantID)
}

// OverdueVerifications lists pending records past their deadline whose
// sub-account is not frozen yet, oldest deadline first.
func (s *DB) OverdueVerifications(ctx context.Context, now time.Time, limit int) ([]store.Verification, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return s.listVerifications(ctx, `WHERE v.deadline <= ? AND s.verify_frozen = 0 AND v.state IN (?, ?, ?) ORDER BY v.deadline LIMIT ?`,
		ts(now), store.VerifyNotStarted, store.VerifyInProgress, store.VerifyRejected, limit)
}

// UpdateVerification is one locked read-modify-write of a record.
func (s *DB) UpdateVerification(ctx context.Context, tenantID, subID string, actor store.Actor, action string, change store.VerificationChange) (store.Verification, error) {
	if action == "" {
		return store.Verification{}, invalid("an audit action is required")
	}
	var out store.Verification
	err := s.inTx(ctx, func(tx *txn) error {
		// The sub-account row is the lock (as for every change of it).
		var status string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT status FROM sub_accounts WHERE tenant_id = ? AND id = ?`+s.d.ForUpdate), tenantID, subID).Scan(&status); err != nil {
			return notFound(err, "sub-account")
		}
		old, err := s.scanVerification(tx.QueryRowContext(ctx, s.q(`SELECT `+verifyColumns+verifyFrom+`WHERE v.tenant_id = ? AND v.sub_id = ?`), tenantID, subID))
		if err != nil {
			return err
		}
		v := old
		detail, err := change(&v)
		if err != nil {
			return err
		}
		if !v.State.Valid() || v.Deadline.IsZero() || v.Link == "" || len(v.Reason) > 500 || len(v.Holder) > 64 {
			return invalid("verification: bad state %q, deadline, link, reason or holder", v.State)
		}
		v.TenantID, v.SubID, v.SubName = old.TenantID, old.SubID, old.SubName // not the change's to move
		idHash, phoneHash, bind := s.bindArgs(tenantID, &v)
		if err := s.writeVerification(ctx, tx, v, idHash, phoneHash, bind, old.Link != v.Link); err != nil {
			return err
		}
		if v.Frozen != old.Frozen {
			if err := s.setVerifyFrozen(ctx, tx, tenantID, subID, v.Frozen); err != nil {
				return err
			}
		}
		if detail == nil {
			detail = map[string]string{}
		}
		detail["state"] = string(v.State)
		if !v.Deadline.Equal(old.Deadline) {
			detail["deadline"] = timeText(v.Deadline)
		}
		if err := s.audit(ctx, tx, tenantID, actor, action, v.SubName, detail); err != nil {
			return err
		}
		v.Person = nil
		out = v
		return nil
	})
	if err != nil {
		return store.Verification{}, err
	}
	return out, nil
}

// bindArgs says how the person columns change: bind with new hashes (a
// Person was set), clear (Bound cleared), or keep (bind false).
func (s *DB) bindArgs(tenantID string, v *store.Verification) (idHash, phoneHash []byte, bind bool) {
	switch {
	case v.Person != nil:
		v.Bound = true
		return s.personHash(tenantID, "id", v.Person.IDNumber), s.personHash(tenantID, "phone", v.Person.Phone), true
	case !v.Bound:
		return nil, nil, true
	}
	return nil, nil, false
}

func (s *DB) writeVerification(ctx context.Context, tx *txn, v store.Verification, idHash, phoneHash []byte, bind, newLink bool) error {
	v.UpdatedAt = fromTS(ts(time.Now()))
	_, err := tx.ExecContext(ctx, s.q(`UPDATE verifications SET state = ?, deadline = ?, started_at = ?, submitted_at = ?, decided_at = ?,
		reason = ?, holder = ?, unfreezes = ?, updated_at = ? WHERE tenant_id = ? AND sub_id = ?`),
		v.State, ts(v.Deadline), ts(v.StartedAt), ts(v.SubmittedAt), ts(v.DecidedAt), v.Reason, v.Holder, v.Unfreezes, ts(v.UpdatedAt), v.TenantID, v.SubID)
	if err != nil {
		return err
	}
	if bind {
		_, err = tx.ExecContext(ctx, s.q(`UPDATE verifications SET id_hash = ?, phone_hash = ? WHERE tenant_id = ? AND sub_id = ?`), idHash, phoneHash, v.TenantID, v.SubID)
		if err != nil && s.d.IsUniqueViolation(err) {
			return fmt.Errorf("verification of %s: %w", v.SubName, store.ErrPersonBound)
		}
		if err != nil {
			return err
		}
	}
	if newLink {
		_, err = tx.ExecContext(ctx, s.q(`UPDATE verifications SET link_hash = ?, link = ? WHERE tenant_id = ? AND sub_id = ?`),
			linkHash(v.Link), s.sealer.seal([]byte(v.Link), "verify:"+v.SubID), v.TenantID, v.SubID)
	}
	return err
}

// setVerifyFrozen flips the sub-account's flag with a new policy seq (so
// proxies follow, like any policy change); a freeze also ends the
// sub-account's portal sessions.
func (s *DB) setVerifyFrozen(ctx context.Context, tx *txn, tenantID, subID string, frozen bool) error {
	seq, err := s.nextSeq(ctx, tx)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE sub_accounts SET verify_frozen = ?, change_seq = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`),
		b2i(frozen), seq, ts(time.Now()), tenantID, subID); err != nil {
		return err
	}
	if frozen {
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE tenant_id = ? AND sub_id = ?`), tenantID, subID)
	}
	return err
}

// AcquireLease takes the named lease when it is free, expired or holder's.
func (s *DB) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, invalid("a lease needs a name, a holder and a duration")
	}
	var got bool
	err := s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO job_leases (name, holder, until_at) VALUES (?, '', 0) ON CONFLICT (name) DO NOTHING`), name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE job_leases SET holder = ?, until_at = ? WHERE name = ? AND (holder = ? OR until_at <= ?)`),
			holder, ts(now.Add(ttl)), name, holder, ts(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		got = n == 1
		return err
	})
	return got, err
}

// UseNonce records a nonce once; a second use is ErrDuplicate.
func (s *DB) UseNonce(ctx context.Context, nonce string, expires, now time.Time) error {
	if nonce == "" || len(nonce) > 128 || !expires.After(now) {
		return invalid("a nonce needs a value and a future end")
	}
	return s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM verify_nonces WHERE expires_at <= ?`), ts(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO verify_nonces (nonce, expires_at) VALUES (?, ?)`), nonce, ts(expires))
		if err != nil && s.d.IsUniqueViolation(err) {
			return fmt.Errorf("nonce: %w", store.ErrDuplicate)
		}
		return err
	})
}
