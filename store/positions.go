package store

import (
	"context"
	"time"
)

// Position is a store's own permission points of a position (a role key
// of the catalog, configs/permissions.yaml): the owner edited the
// catalog's defaults for this store only. A position without a row here
// grants the catalog's defaults.
type Position struct {
	TenantID  string
	Role      string
	Points    []string // sorted, deduplicated; may be empty
	ChangeSeq int64
	UpdatedAt time.Time
}

// Positions is the per-store part of the position catalog. Every edit
// gives each sub-account of that position in that store a new policy seq,
// so the change reaches every proxy the way a revocation does, and is
// audited ("position.edit", "position.reset") in the same transaction.
// The caller checks role and points against the catalog; the store checks
// only their form (ErrInvalid).
type Positions interface {
	// SetPosition replaces the store's points of role.
	SetPosition(ctx context.Context, tenantID, role string, points []string, actor Actor) (Position, error)
	// ResetPosition goes back to the catalog's defaults (ErrNotFound: the
	// store never edited role).
	ResetPosition(ctx context.Context, tenantID, role string, actor Actor) error
	// ListPositions lists the store's edited positions by role.
	ListPositions(ctx context.Context, tenantID string) ([]Position, error)
}

// EffectivePermissions is what a sub-account may use: its position's
// points (the store's own when edited, else the catalog's defaults
// passed in) plus its supplementary grants, sorted and deduplicated.
func EffectivePermissions(s SubAccount, catalogDefaults []string) []string {
	base := catalogDefaults
	if s.RoleEdited {
		base = s.RolePoints
	}
	return normalizePoints(append(append([]string(nil), base...), s.Grants...))
}

// PositionOf is EffectivePermissions for a position alone (no grants),
// from the store's edited positions.
func PositionOf(edited []Position, role string, catalogDefaults []string) (points []string, isEdited bool) {
	for _, p := range edited {
		if p.Role == role {
			return p.Points, true
		}
	}
	return catalogDefaults, false
}
