package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

func checkRoleKey(role string) error {
	if role == "" || len(role) > 64 {
		return invalid("a role (position) is required")
	}
	return nil
}

// SetPosition replaces the store's own points of a position. The
// sub-accounts of the position are locked first (the order every
// sub-account change takes: rows, then the policy seq, then the audit
// head), then all get the new seq so every proxy re-reads them.
func (s *DB) SetPosition(ctx context.Context, tenantID, role string, points []string, actor store.Actor) (store.Position, error) {
	if err := checkRoleKey(role); err != nil {
		return store.Position{}, err
	}
	encoded, err := encodeGrants(points)
	if err != nil {
		return store.Position{}, err
	}
	if encoded == "" {
		encoded = "[]" // edited to nothing, unlike "no row" (the defaults)
	}
	out := store.Position{TenantID: tenantID, Role: role, Points: normalizeGrants(points)}
	err = s.inTx(ctx, func(tx *txn) error {
		before, _, err := s.positionIn(ctx, tx, tenantID, role)
		if err != nil {
			return err
		}
		seq, n, err := s.touchPosition(ctx, tx, tenantID, role)
		if err != nil {
			return err
		}
		now := ts(time.Now())
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO positions (tenant_id, role, points, change_seq, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, role) DO UPDATE SET points = excluded.points, change_seq = excluded.change_seq, updated_at = excluded.updated_at`),
			tenantID, role, encoded, seq, now); err != nil {
			return err
		}
		out.ChangeSeq, out.UpdatedAt = seq, fromTS(now)
		return s.audit(ctx, tx, tenantID, actor, "position.edit", role, map[string]string{
			"points": strings.Join(out.Points, ","), "before": before, "sub_accounts": strconv.Itoa(n)})
	})
	if err != nil {
		return store.Position{}, err
	}
	return out, nil
}

// ResetPosition drops the store's own points of a position.
func (s *DB) ResetPosition(ctx context.Context, tenantID, role string, actor store.Actor) error {
	if err := checkRoleKey(role); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *txn) error {
		before, ok, err := s.positionIn(ctx, tx, tenantID, role)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("position %q: %w", role, store.ErrNotFound)
		}
		_, n, err := s.touchPosition(ctx, tx, tenantID, role)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM positions WHERE tenant_id = ? AND role = ?`), tenantID, role); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenantID, actor, "position.reset", role, map[string]string{"before": before, "sub_accounts": strconv.Itoa(n)})
	})
}

// positionIn reads the store's points of role inside tx ("" and false:
// not edited) and checks that the store exists.
func (s *DB) positionIn(ctx context.Context, tx *txn, tenantID, role string) (string, bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM tenants WHERE id = ?`), tenantID).Scan(&n); err != nil {
		return "", false, err
	}
	if n == 0 {
		return "", false, fmt.Errorf("store: %w", store.ErrNotFound)
	}
	var points string
	err := tx.QueryRowContext(ctx, s.q(`SELECT points FROM positions WHERE tenant_id = ? AND role = ?`), tenantID, role).Scan(&points)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	p, err := decodePoints(points)
	return strings.Join(p, ","), true, err
}

// touchPosition locks the position's sub-accounts, takes a new policy seq
// and gives it to all of them; it returns the seq and how many there are.
func (s *DB) touchPosition(ctx context.Context, tx *txn, tenantID, role string) (int64, int, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM sub_accounts WHERE tenant_id = ? AND role = ? ORDER BY id`+s.d.ForUpdate), tenantID, role)
	if err != nil {
		return 0, 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	seq, err := s.nextSeq(ctx, tx)
	if err != nil {
		return 0, 0, err
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE sub_accounts SET change_seq = ? WHERE tenant_id = ? AND role = ?`), seq, tenantID, role); err != nil {
			return 0, 0, err
		}
	}
	return seq, len(ids), nil
}

// ListPositions lists the store's edited positions by role.
func (s *DB) ListPositions(ctx context.Context, tenantID string) ([]store.Position, error) {
	rows, err := s.ro().QueryContext(ctx, s.q(`SELECT role, points, change_seq, updated_at FROM positions WHERE tenant_id = ? ORDER BY role`), tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Position
	for rows.Next() {
		p := store.Position{TenantID: tenantID}
		var points string
		var updated int64
		if err := rows.Scan(&p.Role, &points, &p.ChangeSeq, &updated); err != nil {
			return nil, err
		}
		if p.Points, err = decodePoints(points); err != nil {
			return nil, fmt.Errorf("position %s: %w", p.Role, err)
		}
		p.UpdatedAt = fromTS(updated)
		out = append(out, p)
	}
	return out, rows.Err()
}

func decodePoints(v string) ([]string, error) {
	var p []string
	if v == "" {
		return nil, nil
	}
	err := json.Unmarshal([]byte(v), &p)
	return p, err
}

// withPositions fills RolePoints/RoleEdited of sub-accounts (for the
// policy): one read of the edited positions of the stores involved.
func (s *DB) withPositions(ctx context.Context, subs []store.SubAccount) error {
	edited := map[string]map[string][]string{} // tenant -> role -> points
	for i := range subs {
		byRole, ok := edited[subs[i].TenantID]
		if !ok {
			list, err := s.ListPositions(ctx, subs[i].TenantID)
			if err != nil {
				return err
			}
			byRole = map[string][]string{}
			for _, p := range list {
				byRole[p.Role] = p.Points
			}
			edited[subs[i].TenantID] = byRole
		}
		subs[i].RolePoints, subs[i].RoleEdited = byRole[subs[i].Role]
	}
	return nil
}
