package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/devicegate/devicegate/store"
)

// OwnerAccount returns the store's hidden owner sub-account.
func (s *DB) OwnerAccount(ctx context.Context, tenantID string) (store.SubAccount, error) {
	return s.scanSub(s.ro().QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.is_owner = 1`), tenantID))
}

// EnsureOwnerAccount returns the owner sub-account, making it the first
// time. The tenant row is locked first, so two first calls make one.
func (s *DB) EnsureOwnerAccount(ctx context.Context, tenantID string, actor store.Actor) (store.SubAccount, error) {
	var out store.SubAccount
	err := s.inTx(ctx, func(tx *txn) error {
		var tenantName string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT name FROM tenants WHERE id = ?`+s.d.ForUpdate), tenantID).Scan(&tenantName); err != nil {
			return notFound(err, "store")
		}
		a, err := s.scanSub(tx.QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.is_owner = 1`), tenantID))
		if err == nil {
			out = a
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		seq, err := s.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		id, now := store.NewID(), ts(time.Now())
		// No password (the owner logs in as the owner) and no position: the
		// row exists for its devices only.
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sub_accounts (id, tenant_id, name, role, grants, status, password_hash, phone_enabled, totp,
			protect_enabled, max_devices, not_before, not_after, change_seq, created_at, updated_at, is_owner)
			VALUES (?, ?, ?, '', '', ?, '', 1, NULL, 1, 1, 0, 0, ?, ?, ?, 1)`),
			id, tenantID, store.OwnerSubName, store.StatusActive, seq, now, now); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, tenantID, actor, "owner.account", tenantName, map[string]string{"max_devices": "1"}); err != nil {
			return err
		}
		out, err = s.scanSub(tx.QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.id = ?`), tenantID, id))
		return err
	})
	return out, err
}

// SetOwnerCertRequired turns the owner-certificate requirement on or off.
func (s *DB) SetOwnerCertRequired(ctx context.Context, tenantID string, on bool, now time.Time, actor store.Actor) (store.Tenant, error) {
	err := s.inTx(ctx, func(tx *txn) error {
		t, err := s.scanTenant(tx.QueryRowContext(ctx, s.q(`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`+s.d.ForUpdate), tenantID))
		if err != nil {
			return err
		}
		active := 0
		if owner, err := s.scanSub(tx.QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.is_owner = 1`), tenantID)); err == nil {
			devs, err := s.activeDevices(ctx, tx, owner.ID, now)
			if err != nil {
				return err
			}
			active = len(devs)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if on && active == 0 {
			return &store.NotEligibleError{Reason: "no_owner_device"}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE tenants SET owner_cert_required = ? WHERE id = ?`), b2i(on), tenantID); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, actor, "owner.cert_required", t.Name, map[string]string{
			"from": strconv.FormatBool(t.OwnerCertRequired), "to": strconv.FormatBool(on), "owner_devices": strconv.Itoa(active)})
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("owner certificate requirement: %w", err)
	}
	return s.GetTenant(ctx, tenantID)
}
