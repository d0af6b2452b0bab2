package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/devicegate/devicegate/store"
)

// lifecycleCommands: temporary accounts' windows, positions per store and
// a sub-account's position and supplementary points.
func lifecycleCommands() []adminCommand {
	return []adminCommand{
		{"sub window", "STORE:NAME --until DATE [--from DATE]", "set or extend the validity window of a temporary sub-account (audited)", func(fs *flag.FlagSet) adminRun {
			from, until := windowFlags(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubWindow(ctx, pos[0], *from, *until, env)
			}
		}},
		{"sub position", "STORE:NAME --position P [--grant P,...]", "change a sub-account's position and supplementary permission points", func(fs *flag.FlagSet) adminRun {
			role := positionFlag(fs)
			grants := fs.String("grant", "", "supplementary permission points `P,...` (replaces the current ones; empty: none)")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubRole(ctx, pos[0], *role, *grants, env)
			}
		}},
		{"position list", "STORE [--json]", "a store's positions with their permission points (high-risk ones marked)", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminPositionList(ctx, pos[0], *asJSON, env)
			}
		}},
		{"position set", "STORE POSITION --points P,...", "set a position's permission points for this store (reaches every proxy)", func(fs *flag.FlagSet) adminRun {
			points := fs.String("points", "", "the position's permission points `P,...` (empty: none)")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminPositionSet(ctx, pos[0], pos[1], *points, env)
			}
		}},
		{"position reset", "STORE POSITION", "give a position back the catalog's default points for this store", noFlags(
			func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminPositionReset(ctx, pos[0], pos[1], env)
			})},
	}
}

// nameTaken explains seed 002's rule: names are unique per store and
// never reused; a taken name may be a departed sub-account to restore.
func nameTaken(tenantName, subName string, err error) error {
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("store %q already has a sub-account %q (names are never reused, even after departure; "+
			"look for it in `devicegate admin sub list %s`, departed staff included, and bring it back with `sub restore`): %w", tenantName, subName, tenantName, err)
	}
	return err
}

func (a *app) adminSubWindow(ctx context.Context, full, from, until string, env *cliEnv) error {
	if until == "" {
		return fmt.Errorf("%w: --until is required (a temporary account ends)", store.ErrInvalid)
	}
	w, err := parseWindow(from, until, time.Local)
	if err != nil {
		return err
	}
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	if from == "" {
		w.NotBefore = s.Window.NotBefore // an extension keeps the start
		if !w.NotBefore.IsZero() && !w.NotAfter.After(w.NotBefore) {
			return fmt.Errorf("%w: --until must be after the window's start", store.ErrInvalid)
		}
	}
	s, err = a.store.SetValidity(ctx, t.ID, s.ID, w, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: %s\n", s.FullName(), windowText(s.Window))
	return nil
}

func splitPoints(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}

func (a *app) adminSubRole(ctx context.Context, full, role, grants string, env *cliEnv) error {
	list := splitPoints(grants)
	if err := a.catalog.ValidateGrants(role, list); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	s, err = a.store.SetRole(ctx, t.ID, s.ID, role, list, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: position %s, supplementary points %s\n", s.FullName(), s.Role, orNone(s.Grants))
	return nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ",")
}

type positionJSON struct {
	Role     string   `json:"role"`
	Name     string   `json:"name"`
	Points   []string `json:"points"`
	HighRisk []string `json:"high_risk"`
	Edited   bool     `json:"edited"` // the store's own points, not the catalog's defaults
}

func (a *app) positionViews(ctx context.Context, t store.Tenant) ([]positionJSON, error) {
	edited, err := a.store.ListPositions(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	var out []positionJSON
	for _, r := range a.catalog.Roles {
		points, isEdited := store.PositionOf(edited, r.Key, r.Permissions)
		v := positionJSON{Role: r.Key, Name: r.Name.EN + " / " + r.Name.ZH, Points: slices.Sorted(slices.Values(points)), HighRisk: []string{}, Edited: isEdited}
		for _, p := range v.Points {
			if a.catalog.IsHighRisk(p) {
				v.HighRisk = append(v.HighRisk, p)
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func (a *app) adminPositionList(ctx context.Context, storeName string, asJSON bool, env *cliEnv) error {
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	views, err := a.positionViews(ctx, t)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, views)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POSITION\tSOURCE\tPOINTS (* high risk)")
	for _, v := range views {
		src := "default"
		if v.Edited {
			src = "this store"
		}
		marked := make([]string, len(v.Points))
		for i, p := range v.Points {
			marked[i] = p
			if slices.Contains(v.HighRisk, p) {
				marked[i] += "*"
			}
		}
		fmt.Fprintf(tw, "%s (%s)\t%s\t%s\n", v.Role, v.Name, src, orNone(marked))
	}
	return tw.Flush()
}

func (a *app) checkPosition(role string, points []string) error {
	if err := a.catalog.ValidateGrants(role, points); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	return nil
}

func (a *app) adminPositionSet(ctx context.Context, storeName, role, points string, env *cliEnv) error {
	list := splitPoints(points)
	if err := a.checkPosition(role, list); err != nil {
		return err
	}
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	p, err := a.store.SetPosition(ctx, t.ID, role, list, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: position %s now has %s (policy seq %d)\n", t.Name, role, orNone(p.Points), p.ChangeSeq)
	return nil
}

func (a *app) adminPositionReset(ctx context.Context, storeName, role string, env *cliEnv) error {
	if err := a.checkPosition(role, nil); err != nil {
		return err
	}
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	if err := a.store.ResetPosition(ctx, t.ID, role, cliActor()); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: position %s has the catalog's default points again\n", t.Name, role)
	return nil
}
