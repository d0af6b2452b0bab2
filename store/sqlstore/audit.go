package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

// genesisHash is the PrevHash of a tenant's first audit event.
var genesisHash = strings.Repeat("0", 64)

// chainHash is SHA-256 over the previous hash and an unambiguous,
// length-prefixed encoding of the event (detail keys sorted).
func chainHash(prev string, tenantID string, seq int64, e store.AuditEntry) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(prev)
	field(tenantID)
	binary.BigEndian.PutUint64(n[:], uint64(seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(ts(e.Time)))
	h.Write(n[:])
	for _, s := range []string{e.Actor.Kind, e.Actor.Name, e.Actor.IP, e.Actor.UA, e.Action, e.Target, e.Outcome} {
		field(s)
	}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	binary.BigEndian.PutUint64(n[:], uint64(len(keys)))
	h.Write(n[:])
	for _, k := range keys {
		field(k)
		field(e.Detail[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// appendAudit adds one event to the tenant's chain inside tx. The head row
// is locked (PostgreSQL) so concurrent appends cannot fork the chain.
func (s *DB) appendAudit(ctx context.Context, tx *txn, tenantID string, e store.AuditEntry) (store.AuditEvent, error) {
	evs, err := s.appendAuditChain(ctx, tx, tenantID, []store.AuditEntry{e})
	if err != nil {
		return store.AuditEvent{}, err
	}
	return evs[0], nil
}

const (
	auditInsertColumns = 13
	auditRowsPerInsert = 64
)

// auditInsertNames are the audit columns that chainEvents gives values to.
const auditInsertNames = `tenant_id, seq, at, actor_kind, actor_name, actor_ip, actor_ua, action, target, outcome, detail, prev_hash, hash`

// auditInsert is the INSERT of n audit rows.
func auditInsert(n int) string {
	return `INSERT INTO audit (` + auditInsertNames + `) ` + auditValues(n, false)
}

// auditValues is the VALUES list of n audit rows. typed casts the integer
// columns, for a VALUES list that is not the INSERT's own (its parameters
// would otherwise be taken as text).
func auditValues(n int, typed bool) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", auditInsertColumns), ", ") + ")"
	if typed {
		row = "(?, ?::bigint, ?::bigint, " + strings.TrimSuffix(strings.Repeat("?, ", auditInsertColumns-3), ", ") + ")"
	}
	return `VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// auditHead is a store's audit head: its last event's seq and hash.
type auditHead struct {
	seq  int64
	hash string
}

// appendAuditChain appends entries to one tenant's chain: the head is read
// (and locked) once and written once, whatever the number of entries. On
// PostgreSQL it first tries the head this process wrote last, in one
// statement that moves the head only if it is still that one and inserts
// the rows only if it moved, and otherwise reads and locks the current
// head: one round trip instead of two while no other node or proxy wrote
// to the store's chain meanwhile, and two as before when one did. The
// database decides, never the cache: a stale head (another writer, a
// rolled-back transaction) moves nothing.
func (s *DB) appendAuditChain(ctx context.Context, tx *txn, tenantID string, entries []store.AuditEntry) ([]store.AuditEvent, error) {
	var head auditHead
	locked := false
	if cached, ok := s.heads.Load(tenantID); ok && s.d.WritesInWith && len(entries) <= auditRowsPerInsert {
		from := cached.(auditHead)
		out, args, next, err := chainEvents(tenantID, from, entries)
		if err != nil {
			return nil, err
		}
		var moved int
		var seq sql.NullInt64
		var hash sql.NullString
		if err := tx.QueryRowContext(ctx, s.q(`WITH h AS (UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant_id = ? AND seq = ? AND hash = ? RETURNING 1),
			rows AS (INSERT INTO audit (`+auditInsertNames+`) SELECT v.* FROM (`+auditValues(len(out), true)+`) v, h),
			cur AS (SELECT seq, hash FROM audit_heads WHERE tenant_id = ? AND NOT EXISTS (SELECT 1 FROM h)`+s.d.ForUpdate+`)
			SELECT (SELECT COUNT(*) FROM h), (SELECT seq FROM cur), (SELECT hash FROM cur)`),
			append(append([]any{next.seq, next.hash, tenantID, from.seq, from.hash}, args...), tenantID)...).Scan(&moved, &seq, &hash); err != nil {
			return nil, err
		}
		if moved == 1 {
			s.heads.Store(tenantID, next)
			return out, nil
		}
		if !seq.Valid {
			return nil, notFound(sql.ErrNoRows, "store")
		}
		head, locked = auditHead{seq: seq.Int64, hash: hash.String}, true
	}
	if !locked {
		err := tx.QueryRowContext(ctx, s.q(`SELECT seq, hash FROM audit_heads WHERE tenant_id = ?`+s.d.ForUpdate), tenantID).Scan(&head.seq, &head.hash)
		if err != nil {
			return nil, notFound(err, "store")
		}
	}
	out, args, next, err := chainEvents(tenantID, head, entries)
	if err != nil {
		return nil, err
	}
	const moveHead = `UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant_id = ?`
	// Many rows per INSERT: per-statement overhead dominated batched writes.
	for start := 0; start < len(out); start += auditRowsPerInsert {
		n := min(auditRowsPerInsert, len(out)-start)
		chunk := args[start*auditInsertColumns : (start+n)*auditInsertColumns]
		if start+n == len(out) && s.d.WritesInWith {
			// The last rows and the head in one round trip: the head is
			// locked until commit, so the writers of this store wait for
			// every round trip after it.
			if _, err := tx.ExecContext(ctx, s.q(`WITH rows AS (`+auditInsert(n)+`) `+moveHead), append(chunk, next.seq, next.hash, tenantID)...); err != nil {
				return nil, err
			}
			s.heads.Store(tenantID, next)
			return out, nil
		}
		if _, err := tx.ExecContext(ctx, s.q(auditInsert(n)), chunk...); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(moveHead), next.seq, next.hash, tenantID); err != nil {
		return nil, err
	}
	return out, nil
}

// chainEvents chains entries after head: the events, their audit rows'
// values (auditInsertColumns each) and the new head.
func chainEvents(tenantID string, head auditHead, entries []store.AuditEntry) ([]store.AuditEvent, []any, auditHead, error) {
	out := make([]store.AuditEvent, 0, len(entries))
	args := make([]any, 0, len(entries)*auditInsertColumns)
	seq, prev := head.seq, head.hash
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		e.Time = fromTS(ts(e.Time)) // the precision that is stored
		if e.Action == "" {
			return nil, nil, head, invalid("audit action is required")
		}
		seq++
		hash := chainHash(prev, tenantID, seq, e)
		detail := "{}"
		if len(e.Detail) > 0 {
			b, err := json.Marshal(e.Detail)
			if err != nil {
				return nil, nil, head, err
			}
			detail = string(b)
		}
		args = append(args, tenantID, seq, ts(e.Time), e.Actor.Kind, e.Actor.Name, e.Actor.IP, e.Actor.UA, e.Action, e.Target, e.Outcome, detail, prev, hash)
		out = append(out, store.AuditEvent{AuditEntry: e, TenantID: tenantID, Seq: seq, PrevHash: prev, Hash: hash})
		prev = hash
	}
	return out, args, auditHead{seq: seq, hash: prev}, nil
}

// audit is the short form used by mutating methods. In a group commit the
// event is appended at the batch's end, with the other ops' events.
func (s *DB) audit(ctx context.Context, tx *txn, tenantID string, actor store.Actor, action, target string, detail map[string]string) error {
	e := store.AuditEntry{Time: time.Now(), Actor: actor, Action: action, Target: target, Outcome: "ok", Detail: detail}
	if tx.op != nil {
		tx.op.audit = append(tx.op.audit, store.AuditRecord{TenantID: tenantID, Entry: e})
		return nil
	}
	_, err := s.appendAudit(ctx, tx, tenantID, e)
	return err
}

// AppendAudit records an event (e.g. a proxy access decision).
func (s *DB) AppendAudit(ctx context.Context, tenantID string, e store.AuditEntry) (store.AuditEvent, error) {
	var ev store.AuditEvent
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		ev, err = s.appendAudit(ctx, tx, tenantID, e)
		return err
	})
	return ev, err
}

// AppendAuditBatch appends records in one transaction, tenants in id order
// (a fixed lock order), each tenant's events in their given order.
func (s *DB) AppendAuditBatch(ctx context.Context, records []store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	byTenant := map[string][]store.AuditEntry{}
	for _, r := range records {
		byTenant[r.TenantID] = append(byTenant[r.TenantID], r.Entry)
	}
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	return s.inTx(ctx, func(tx *txn) error {
		for _, t := range tenants {
			if _, err := s.appendAuditChain(ctx, tx, t, byTenant[t]); err != nil {
				return fmt.Errorf("audit of store %s: %w", t, err)
			}
		}
		return nil
	})
}

const auditColumns = `seq, at, actor_kind, actor_name, actor_ip, actor_ua, action, target, outcome, detail, prev_hash, hash`

func scanAudit(rows *sql.Rows, tenantID string) (store.AuditEvent, error) {
	var e store.AuditEvent
	var at int64
	var detail string
	err := rows.Scan(&e.Seq, &at, &e.Actor.Kind, &e.Actor.Name, &e.Actor.IP, &e.Actor.UA, &e.Action, &e.Target, &e.Outcome, &detail, &e.PrevHash, &e.Hash)
	if err != nil {
		return e, err
	}
	e.TenantID, e.Time = tenantID, fromTS(at)
	if detail != "{}" {
		if err := json.Unmarshal([]byte(detail), &e.Detail); err != nil {
			return e, fmt.Errorf("audit %d detail: %w", e.Seq, err)
		}
	}
	return e, nil
}

// ListAudit lists a tenant's events in seq order.
func (s *DB) ListAudit(ctx context.Context, tenantID string, f store.AuditFilter) ([]store.AuditEvent, error) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	query := `SELECT ` + auditColumns + ` FROM audit WHERE tenant_id = ? AND seq > ?`
	args := []any{tenantID, f.AfterSeq}
	if f.Target != "" {
		query += ` AND target = ?`
		args = append(args, f.Target)
	}
	if f.Action != "" {
		query += ` AND action LIKE ? ESCAPE '\'`
		args = append(args, likePrefix(f.Action))
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := s.ro().QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows, tenantID)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// likePrefix escapes LIKE wildcards and appends '%'.
func likePrefix(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// VerifyAudit recomputes the tenant's chain and names the first break. The
// head is read first and the events up to it after: an event and the head
// that covers it commit together, so appends running meanwhile cannot make
// a sound chain look cut.
func (s *DB) VerifyAudit(ctx context.Context, tenantID string) error {
	var headSeq int64
	var headHash string
	if err := s.ro().QueryRowContext(ctx, s.q(`SELECT seq, hash FROM audit_heads WHERE tenant_id = ?`), tenantID).Scan(&headSeq, &headHash); err != nil {
		return notFound(err, "store")
	}
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+auditColumns+` FROM audit WHERE tenant_id = ? AND seq <= ? ORDER BY seq`), tenantID, headSeq)
	if err != nil {
		return err
	}
	defer rows.Close()
	prev, want := genesisHash, int64(1)
	for rows.Next() {
		e, err := scanAudit(rows, tenantID)
		if err != nil {
			return err
		}
		switch {
		case e.Seq != want:
			return fmt.Errorf("audit chain broken at seq %d: event %d is missing", e.Seq, want)
		case e.PrevHash != prev:
			return fmt.Errorf("audit chain broken at seq %d: previous hash does not match", e.Seq)
		case chainHash(prev, tenantID, e.Seq, e.AuditEntry) != e.Hash:
			return fmt.Errorf("audit chain broken at seq %d: event was modified", e.Seq)
		}
		prev, want = e.Hash, want+1
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if headSeq != want-1 || headHash != prev {
		return fmt.Errorf("audit chain broken: events after seq %d are missing", want-1)
	}
	return nil
}
