package main

import (
	"context"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/store"
)

func (a *app) adminAudit(ctx context.Context, storeName, target string, asJSON bool, env *cliEnv) error {
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	evs, err := a.store.ListAudit(ctx, t.ID, store.AuditFilter{Target: target})
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, evs)
	}
	for _, e := range evs {
		fmt.Fprintf(env.stdout, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Actor.Name, e.Action, e.Target, e.Outcome)
	}
	return nil
}

func (a *app) adminAuditVerify(ctx context.Context, storeName string, env *cliEnv) error {
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	if err := a.store.VerifyAudit(ctx, t.ID); err != nil {
		return fmt.Errorf("audit chain of %s is broken: %w", t.Name, err)
	}
	// An intact chain can still miss decisions a proxy could not write;
	// the proxy recorded how many (and when) as gap entries: say so.
	gaps, err := store.AuditGaps(ctx, a.store, t.ID)
	if err != nil {
		return fmt.Errorf("audit gaps of %s: %w", t.Name, err)
	}
	fmt.Fprintf(env.stdout, "audit chain of %s verifies; %s\n", t.Name, store.DescribeAuditGaps(gaps))
	for _, g := range gaps {
		fmt.Fprintf(env.stdout, "  seq %d: %d events lost between %s and %s\n", g.Seq, g.Events,
			g.From.UTC().Format(time.RFC3339Nano), g.To.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
