package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// CreateTenant adds a store (tenant) with an empty audit chain.
func (s *DB) CreateTenant(ctx context.Context, nt store.NewTenant, actor store.Actor) (store.Tenant, error) {
	if err := identity.ValidateStoreName(nt.Name); err != nil {
		return store.Tenant{}, invalid("%v", err)
	}
	if nt.DisplayName == "" {
		nt.DisplayName = nt.Name
	}
	if err := identity.ValidateLabel(nt.DisplayName); err != nil {
		return store.Tenant{}, invalid("display name: %v", err)
	}
	t := store.Tenant{ID: store.NewID(), Name: nt.Name, DisplayName: nt.DisplayName, CreatedAt: fromTS(ts(time.Now()))}
	err := s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO tenants (id, name, display_name, created_at) VALUES (?, ?, ?, ?)`),
			t.ID, t.Name, t.DisplayName, ts(t.CreatedAt)); err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("store %q: %w", t.Name, store.ErrDuplicate)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (?, 0, ?)`), t.ID, genesisHash); err != nil {
			return err
		}
		return s.audit(ctx, tx, t.ID, actor, "tenant.create", t.Name, nil)
	})
	if err != nil {
		return store.Tenant{}, err
	}
	return t, nil
}

const tenantColumns = `id, name, display_name, owner_password_hash, owner_totp, owner_cert_required, created_at`

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func (s *DB) scanTenant(row scanner) (store.Tenant, error) {
	var t store.Tenant
	var sealed []byte
	var created, certRequired int64
	if err := row.Scan(&t.ID, &t.Name, &t.DisplayName, &t.OwnerPasswordHash, &sealed, &certRequired, &created); err != nil {
		return t, notFound(err, "store")
	}
	t.CreatedAt, t.OwnerCertRequired = fromTS(created), certRequired == 1
	var err error
	t.OwnerTOTPSecret, err = s.sealer.open(sealed, "tenant:"+t.ID)
	return t, err
}

// GetTenant returns a tenant by id.
func (s *DB) GetTenant(ctx context.Context, tenantID string) (store.Tenant, error) {
	return s.scanTenant(s.ro().QueryRowContext(ctx, s.q(`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`), tenantID))
}

// GetTenantByName returns a tenant by its unique name.
func (s *DB) GetTenantByName(ctx context.Context, name string) (store.Tenant, error) {
	return s.scanTenant(s.ro().QueryRowContext(ctx, s.q(`SELECT `+tenantColumns+` FROM tenants WHERE name = ?`), name))
}

// ListTenants lists tenants by name (operator use).
func (s *DB) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT `+tenantColumns+` FROM tenants ORDER BY name`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		t, err := s.scanTenant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// SetOwnerLogin replaces the owner's password hash and TOTP secret.
func (s *DB) SetOwnerLogin(ctx context.Context, tenantID, passwordHash string, totpSecret []byte, actor store.Actor) error {
	if passwordHash == "" {
		return invalid("owner password hash is required")
	}
	return s.inTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE tenants SET owner_password_hash = ?, owner_totp = ? WHERE id = ?`),
			passwordHash, s.sealer.seal(totpSecret, "tenant:"+tenantID), tenantID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("store: %w", store.ErrNotFound)
		}
		return s.audit(ctx, tx, tenantID, actor, "tenant.owner_login", tenantID, map[string]string{"totp": fmt.Sprint(totpSecret != nil)})
	})
}

// UseTOTPStep spends a TOTP time step with one conditional UPDATE: two
// logins racing with the same code cannot both succeed.
func (s *DB) UseTOTPStep(ctx context.Context, tenantID, subID string, step int64) error {
	return s.inTx(ctx, func(tx *txn) error {
		var res sql.Result
		var err error
		if subID == "" {
			res, err = tx.ExecContext(ctx, s.q(`UPDATE tenants SET owner_totp_last_step = ? WHERE id = ? AND owner_totp_last_step < ?`),
				step, tenantID, step)
		} else {
			res, err = tx.ExecContext(ctx, s.q(`UPDATE sub_accounts SET totp_last_step = ? WHERE tenant_id = ? AND id = ? AND totp_last_step < ?`),
				step, tenantID, subID, step)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		// Nothing updated: unknown row, or the step was spent already.
		var exists int
		q := `SELECT COUNT(*) FROM tenants WHERE id = ?`
		args := []any{tenantID}
		if subID != "" {
			q, args = `SELECT COUNT(*) FROM sub_accounts WHERE tenant_id = ? AND id = ?`, []any{tenantID, subID}
		}
		if err := tx.QueryRowContext(ctx, s.q(q), args...).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return fmt.Errorf("store: %w", store.ErrNotFound)
		}
		return store.ErrCodeReused
	})
}
