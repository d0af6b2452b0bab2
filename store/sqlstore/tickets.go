package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/store"
)

// CreateTicket stores the hash of a one-time enrollment code.
func (s *DB) CreateTicket(ctx context.Context, t store.NewTicket, actor store.Actor) error {
	if len(t.Hash) != 32 {
		return invalid("ticket hash must be 32 bytes")
	}
	if !t.ExpiresAt.After(time.Now()) {
		return invalid("ticket expiry is in the past")
	}
	return s.inTx(ctx, func(tx *txn) error {
		sub, err := s.lockSub(ctx, tx, t.TenantID, t.SubID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO tickets (hash, tenant_id, sub_id, expires_at, used_at, created_at) VALUES (?, ?, ?, ?, 0, ?)`),
			t.Hash, t.TenantID, t.SubID, ts(t.ExpiresAt), ts(time.Now())); err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("ticket: %w", store.ErrDuplicate)
			}
			return err
		}
		return s.audit(ctx, tx, t.TenantID, actor, "ticket.create", sub.FullName(), map[string]string{"expires": timeText(t.ExpiresAt)})
	})
}

// LookupTicket reports a ticket's state without consuming it. It runs
// before every issuance, so through the statement cache (no SQL parsing).
func (s *DB) LookupTicket(ctx context.Context, hash []byte, now time.Time) (store.Ticket, error) {
	return s.readTicket(ctx, s.ro(), hash, now)
}

// IssuePrecheck reads ticket, sub-account and device count in one round
// trip (see store.Store).
func (s *DB) IssuePrecheck(ctx context.Context, hash []byte, tenantID, subID string, now time.Time) (store.IssueCheck, error) {
	var c store.IssueCheck
	const count = `(SELECT COUNT(*) FROM devices d WHERE d.sub_id = s.id AND d.status = ? AND d.expires_at > ?)`
	if hash == nil {
		// By the primary key alone (see ofStore).
		sub, err := s.scanSub(scanWith{s.ro().QueryRowContext(ctx, s.q(`SELECT `+subColumns+`, `+count+subFrom+`WHERE s.id = ?`),
			store.DeviceActive, ts(now), subID), []any{&c.Active}})
		c.SubAccount, err = ofStore(tenantID, sub, err)
		return c, err
	}
	var expires, used int64
	sub, err := s.scanSub(scanWith{s.ro().QueryRowContext(ctx, s.q(`SELECT `+subColumns+`, tk.tenant_id, tk.sub_id, tk.expires_at, tk.used_at, `+count+
		` FROM tickets tk JOIN sub_accounts s ON s.id = tk.sub_id JOIN tenants t ON t.id = s.tenant_id WHERE tk.hash = ?`),
		store.DeviceActive, ts(now), hash), []any{&c.Ticket.TenantID, &c.Ticket.SubID, &expires, &used, &c.Active}})
	sub, err = ofStore(c.Ticket.TenantID, sub, err) // joined by the sub-account's key alone
	if errors.Is(err, store.ErrNotFound) {
		return c, store.ErrTicketUnknown
	}
	if err != nil {
		return c, err
	}
	c.SubAccount = sub
	c.Ticket.ExpiresAt, c.Ticket.UsedAt = fromTS(expires), fromTS(used)
	switch {
	case used != 0:
		return c, store.ErrTicketUsed
	case !now.Before(c.Ticket.ExpiresAt):
		return c, store.ErrTicketExpired
	}
	return c, nil
}

func (s *DB) readTicket(ctx context.Context, q querier, hash []byte, now time.Time) (store.Ticket, error) {
	var t store.Ticket
	var expires, used int64
	err := q.QueryRowContext(ctx, s.q(`SELECT tenant_id, sub_id, expires_at, used_at FROM tickets WHERE hash = ?`), hash).Scan(&t.TenantID, &t.SubID, &expires, &used)
	if err == sql.ErrNoRows {
		return t, store.ErrTicketUnknown
	}
	if err != nil {
		return t, err
	}
	t.ExpiresAt, t.UsedAt = fromTS(expires), fromTS(used)
	switch {
	case used != 0:
		return t, store.ErrTicketUsed
	case !now.Before(t.ExpiresAt):
		return t, store.ErrTicketExpired
	}
	return t, nil
}

// consumeTicket marks a ticket of this tenant and sub-account used, once:
// one UPDATE in the common case; the SELECT only runs to name a refusal.
func (s *DB) consumeTicket(ctx context.Context, tx *txn, hash []byte, tenantID, subID string, now time.Time) error {
	res, err := tx.ExecContext(ctx, s.q(consumeTicketSQL), ts(now), hash, tenantID, subID, ts(now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	return s.ticketRefusal(ctx, tx, hash, tenantID, subID, now)
}

// consumeTicketSQL marks a usable ticket used; arguments: now, hash,
// tenant, sub-account, now.
const consumeTicketSQL = `UPDATE tickets SET used_at = ? WHERE hash = ? AND tenant_id = ? AND sub_id = ? AND used_at = 0 AND expires_at > ?`

// ticketRefusal names why a ticket could not be consumed.
func (s *DB) ticketRefusal(ctx context.Context, tx *txn, hash []byte, tenantID, subID string, now time.Time) error {
	t, err := s.readTicket(ctx, tx, hash, now)
	if err != nil {
		return err
	}
	if t.TenantID != tenantID || t.SubID != subID {
		return store.ErrTicketUnknown
	}
	return store.ErrTicketUsed
}
