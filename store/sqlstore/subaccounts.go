package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

const subColumns = `s.id, s.tenant_id, t.name, s.name, s.role, s.grants, s.status, s.password_hash, s.phone_enabled, s.totp,
	s.protect_enabled, s.max_devices, s.not_before, s.not_after, s.change_seq, s.created_at, s.updated_at, s.verify_frozen, s.is_owner`

const subFrom = ` FROM sub_accounts s JOIN tenants t ON t.id = s.tenant_id `

func (s *DB) scanSub(row scanner) (store.SubAccount, error) {
	var a store.SubAccount
	var grants string
	var sealed []byte
	var phone, protect, verifyFrozen, owner int
	var nb, na, created, updated int64
	err := row.Scan(&a.ID, &a.TenantID, &a.TenantName, &a.Name, &a.Role, &grants, &a.Status, &a.PasswordHash, &phone, &sealed,
		&protect, &a.Protection.MaxDevices, &nb, &na, &a.ChangeSeq, &created, &updated, &verifyFrozen, &owner)
	if err != nil {
		return a, notFound(err, "sub-account")
	}
	a.PhoneEnabled, a.Protection.Enabled, a.VerifyFrozen, a.Owner = phone == 1, protect == 1, verifyFrozen == 1, owner == 1
	a.Window = store.Window{NotBefore: fromTS(nb), NotAfter: fromTS(na)}
	a.CreatedAt, a.UpdatedAt = fromTS(created), fromTS(updated)
	if grants != "" {
		if err := json.Unmarshal([]byte(grants), &a.Grants); err != nil {
			return a, fmt.Errorf("sub-account %s grants: %w", a.ID, err)
		}
	}
	a.TOTPSecret, err = s.sealer.open(sealed, "sub:"+a.ID)
	return a, err
}

// normalizeGrants sorts and dedupes supplementary grants.
func normalizeGrants(g []string) []string {
	if len(g) == 0 {
		return nil
	}
	g = slices.Clone(g)
	slices.Sort(g)
	return slices.Compact(g)
}

func encodeGrants(g []string) (string, error) {
	g = normalizeGrants(g)
	if len(g) == 0 {
		return "", nil
	}
	for _, k := range g {
		if k == "" || len(k) > 64 {
			return "", invalid("permission point %q", k)
		}
	}
	b, err := json.Marshal(g)
	return string(b), err
}

// CreateSubAccount adds "store:name"; names are unique per tenant, forever.
func (s *DB) CreateSubAccount(ctx context.Context, n store.NewSubAccount, actor store.Actor) (store.SubAccount, error) {
	if err := identity.ValidateSubName(n.Name); err != nil {
		return store.SubAccount{}, invalid("%v", err)
	}
	if n.Role == "" || len(n.Role) > 64 {
		return store.SubAccount{}, invalid("a role (position) is required")
	}
	if n.PasswordHash == "" {
		return store.SubAccount{}, invalid("a password is required")
	}
	grants, err := encodeGrants(n.Grants)
	if err != nil {
		return store.SubAccount{}, err
	}
	if err := checkWindow(n.Window); err != nil {
		return store.SubAccount{}, err
	}
	id := store.NewID()
	now := ts(time.Now())
	err = s.inTx(ctx, func(tx *txn) error {
		var tenantName string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT name FROM tenants WHERE id = ?`), n.TenantID).Scan(&tenantName); err != nil {
			return notFound(err, "store")
		}
		seq, err := s.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO sub_accounts (id, tenant_id, name, role, grants, status, password_hash, phone_enabled, totp,
			protect_enabled, max_devices, not_before, not_after, change_seq, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, 0, 0, ?, ?, ?, ?, ?)`),
			id, n.TenantID, n.Name, n.Role, grants, store.StatusActive, n.PasswordHash, ts(n.Window.NotBefore), ts(n.Window.NotAfter), seq, now, now)
		switch {
		case err != nil && s.d.IsUniqueViolation(err):
			return fmt.Errorf("sub-account %q: %w", n.Name, store.ErrDuplicate)
		case err != nil:
			return err
		}
		if err := s.audit(ctx, tx, n.TenantID, actor, "sub.create", tenantName+":"+n.Name, map[string]string{"role": n.Role, "grants": grants}); err != nil {
			return err
		}
		return s.requireVerification(ctx, tx, n.TenantID, id, tenantName+":"+n.Name, n.VerifyDeadline(), actor)
	})
	if err != nil {
		return store.SubAccount{}, err
	}
	return s.GetSubAccount(ctx, n.TenantID, id)
}

func checkWindow(w store.Window) error {
	if !w.NotBefore.IsZero() && !w.NotAfter.IsZero() && !w.NotAfter.After(w.NotBefore) {
		return invalid("validity window ends before it starts")
	}
	return nil
}

// GetSubAccount returns a sub-account of the tenant.
func (s *DB) GetSubAccount(ctx context.Context, tenantID, subID string) (store.SubAccount, error) {
	return s.scanSub(s.ro().QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.id = ?`), tenantID, subID))
}

// GetSubAccountByName returns a sub-account by the name after "store:"
// (never the owner's own, see store.OwnerCerts).
func (s *DB) GetSubAccountByName(ctx context.Context, tenantID, name string) (store.SubAccount, error) {
	return s.scanSub(s.ro().QueryRowContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.name = ? AND s.is_owner = 0`), tenantID, name))
}

// ListSubAccounts lists a tenant's sub-accounts by name (staff only: not
// the owner's own, see store.OwnerCerts).
func (s *DB) ListSubAccounts(ctx context.Context, tenantID string, f store.SubAccountFilter) ([]store.SubAccount, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, invalid("unknown status %q", f.Status)
	}
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+subColumns+subFrom+`WHERE s.tenant_id = ? AND s.is_owner = 0 ORDER BY s.name`), tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	search := strings.ToLower(f.Search)
	var out []store.SubAccount
	for rows.Next() {
		a, err := s.scanSub(rows)
		if err != nil {
			return nil, err
		}
		// Filtered here, not in SQL: Unicode case folding is the same on
		// both backends this way.
		if (f.Status == "" || a.Status == f.Status) && strings.Contains(strings.ToLower(a.Name), search) {
			out = append(out, a)
		}
	}
	return out, rows.Err()
}

// subChange is one locked read-modify-write of a sub-account row.
type subChange func(ctx context.Context, tx *txn, a *store.SubAccount, seq int64) (detail map[string]string, err error)

// updateSub locks the row, applies change, writes every mutable column back
// with a new policy seq and audits, all in one transaction.
func (s *DB) updateSub(ctx context.Context, tenantID, subID string, actor store.Actor, action string, change subChange) (store.SubAccount, error) {
	var out store.SubAccount
	err := s.inTx(ctx, func(tx *txn) error {
		a, err := s.lockSub(ctx, tx, tenantID, subID)
		if err != nil {
			return err
		}
		// The owner's own sub-account has a quota and nothing else a
		// sub-account has (no login, position, status or window).
		if a.Owner && action != "sub.protect" {
			return fmt.Errorf("sub-account: %w", store.ErrNotFound)
		}
		seq, err := s.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		detail, err := change(ctx, tx, &a, seq)
		if err != nil {
			return err
		}
		grants, err := encodeGrants(a.Grants)
		if err != nil {
			return err
		}
		a.Grants = normalizeGrants(a.Grants)
		a.ChangeSeq, a.UpdatedAt = seq, fromTS(ts(time.Now()))
		_, err = tx.ExecContext(ctx, s.q(`UPDATE sub_accounts SET role = ?, grants = ?, status = ?, password_hash = ?, phone_enabled = ?, totp = ?,
			protect_enabled = ?, max_devices = ?, not_before = ?, not_after = ?, change_seq = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`),
			a.Role, grants, a.Status, a.PasswordHash, b2i(a.PhoneEnabled), s.sealer.seal(a.TOTPSecret, "sub:"+a.ID),
			b2i(a.Protection.Enabled), a.Protection.MaxDevices, ts(a.Window.NotBefore), ts(a.Window.NotAfter), seq, ts(a.UpdatedAt), tenantID, subID)
		if err != nil {
			return err
		}
		if err := s.audit(ctx, tx, tenantID, actor, action, a.FullName(), detail); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, err
}

// SetPassword replaces the password hash.
func (s *DB) SetPassword(ctx context.Context, tenantID, subID, passwordHash string, actor store.Actor) error {
	if passwordHash == "" {
		return invalid("a password is required")
	}
	_, err := s.updateSub(ctx, tenantID, subID, actor, "sub.password", func(_ context.Context, _ *txn, a *store.SubAccount, _ int64) (map[string]string, error) {
		a.PasswordHash = passwordHash
		return nil, nil
	})
	return err
}

// SetRole changes the position and supplementary grants.
func (s *DB) SetRole(ctx context.Context, tenantID, subID, role string, grants []string, actor store.Actor) (store.SubAccount, error) {
	if role == "" || len(role) > 64 {
		return store.SubAccount{}, invalid("a role (position) is required")
	}
	return s.updateSub(ctx, tenantID, subID, actor, "sub.role", func(_ context.Context, _ *txn, a *store.SubAccount, _ int64) (map[string]string, error) {
		a.Role, a.Grants = role, grants
		return map[string]string{"role": role, "grants": strings.Join(grants, ",")}, nil
	})
}

// EnablePhone stores the TOTP secret; nil disables phone verification,
// which is refused while certificate protection depends on it.
func (s *DB) EnablePhone(ctx context.Context, tenantID, subID string, secret []byte, actor store.Actor) (store.SubAccount, error) {
	if secret != nil && (len(secret) < 16 || len(secret) > 128) {
		return store.SubAccount{}, invalid("TOTP secret must be 16..128 bytes")
	}
	return s.updateSub(ctx, tenantID, subID, actor, "sub.phone", func(_ context.Context, _ *txn, a *store.SubAccount, _ int64) (map[string]string, error) {
		if secret == nil && a.Protection.Enabled {
			return nil, invalid("turn certificate protection off before phone verification")
		}
		a.TOTPSecret, a.PhoneEnabled = secret, secret != nil
		return map[string]string{"enabled": strconv.FormatBool(secret != nil)}, nil
	})
}

// SetProtection turns certificate protection on with N, or off. Turning it
// off keeps the last N so turning it back on restores the setting.
func (s *DB) SetProtection(ctx context.Context, tenantID, subID string, p store.Protection, actor store.Actor) (store.SubAccount, error) {
	if p.Enabled && (p.MaxDevices < 1 || p.MaxDevices > store.MaxDevicesLimit) {
		return store.SubAccount{}, invalid("the number of computers must be between 1 and %d", store.MaxDevicesLimit)
	}
	return s.updateSub(ctx, tenantID, subID, actor, "sub.protect", func(ctx context.Context, tx *txn, a *store.SubAccount, _ int64) (map[string]string, error) {
		if a.Owner && !p.Enabled {
			return nil, invalid("the owner's certificate protection stays on (choose 1..%d computers)", store.MaxDevicesLimit)
		}
		if p.Enabled {
			if !a.PhoneEnabled {
				return nil, &store.NotEligibleError{Reason: "phone_not_verified"}
			}
			active, err := s.activeDevices(ctx, tx, a.ID, time.Now())
			if err != nil {
				return nil, err
			}
			if len(active) > p.MaxDevices {
				return nil, &store.BelowActiveError{Requested: p.MaxDevices, Active: active}
			}
			a.Protection = p
		} else {
			a.Protection.Enabled = false
		}
		return map[string]string{"enabled": strconv.FormatBool(p.Enabled), "max_devices": strconv.Itoa(a.Protection.MaxDevices)}, nil
	})
}

// SetValidity sets the optional working window of a temporary account.
func (s *DB) SetValidity(ctx context.Context, tenantID, subID string, w store.Window, actor store.Actor) (store.SubAccount, error) {
	if err := checkWindow(w); err != nil {
		return store.SubAccount{}, err
	}
	return s.updateSub(ctx, tenantID, subID, actor, "sub.validity", func(_ context.Context, _ *txn, a *store.SubAccount, _ int64) (map[string]string, error) {
		before := a.Window
		a.Window = w
		return map[string]string{"not_before": timeText(w.NotBefore), "not_after": timeText(w.NotAfter),
			"before_not_before": timeText(before.NotBefore), "before_not_after": timeText(before.NotAfter)}, nil
	})
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// SetStatus changes the status; departing revokes every active device.
func (s *DB) SetStatus(ctx context.Context, tenantID, subID string, status store.SubStatus, actor store.Actor) (store.SubAccount, []store.Revocation, error) {
	if !status.Valid() {
		return store.SubAccount{}, nil, invalid("unknown status %q", status)
	}
	var revs []store.Revocation
	a, err := s.updateSub(ctx, tenantID, subID, actor, "sub.status", func(ctx context.Context, tx *txn, a *store.SubAccount, _ int64) (map[string]string, error) {
		from := a.Status
		a.Status = status
		if status == store.StatusDeparted && from != store.StatusDeparted {
			var err error
			revs, err = s.revokeAll(ctx, tx, a, store.ReasonAffiliationChanged, actor)
			if err != nil {
				return nil, err
			}
		}
		return map[string]string{"from": string(from), "to": string(status), "revoked": strconv.Itoa(len(revs))}, nil
	})
	return a, revs, err
}
