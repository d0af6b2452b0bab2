package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/devicegate/devicegate/ca"
)

// adminIntermediateJSON is one device intermediate in `admin intermediate
// list --json`: the CA directory's view with the devices still on it.
type adminIntermediateJSON struct {
	intermediateJSON
	// ActiveDevices is nil when the intermediate's devices cannot be told
	// apart (it has no subject key identifier of its own).
	ActiveDevices *int `json:"active_devices"`
}

// adminIntermediateList shows the device intermediates of the CA directory
// with the active devices each issued, across every store: before `ca
// intermediate retire`, the old one should have none left.
func (a *app) adminIntermediateList(ctx context.Context, asJSON bool, env *cliEnv) error {
	list, err := ca.ListIntermediates(a.cfg.CA.Dir)
	if errors.Is(err, ca.ErrNotInitialized) {
		return errNoCA
	}
	if err != nil {
		return err
	}
	uses, err := ca.CountIntermediateUse(ctx, a.store, list, time.Now())
	if err != nil {
		return fmt.Errorf("counting devices per intermediate: %w", err)
	}
	views := make([]adminIntermediateJSON, 0, len(uses.Intermediates))
	for _, u := range uses.Intermediates {
		v := adminIntermediateJSON{intermediateJSON: intermediateView(u.DeviceCA)}
		if u.Countable {
			v.ActiveDevices = &u.ActiveDevices
		}
		views = append(views, v)
	}
	if asJSON {
		return printJSON(env, map[string]any{"intermediates": views, "unattributed_devices": uses.Unattributed})
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSUBJECT\tNOT AFTER\tDEVICES")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.State, v.Subject, v.NotAfter.Format(time.DateOnly), activeDevices(v.ActiveDevices))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if uses.Unattributed > 0 {
		fmt.Fprintf(env.stdout, "%s of no listed intermediate (no certificate stored, or an unknown issuer)\n", activeDevices(&uses.Unattributed))
	}
	return nil
}

// activeDevices reads "1 active device", "3 active devices", or "unknown".
func activeDevices(n *int) string {
	switch {
	case n == nil:
		return "unknown"
	case *n == 1:
		return "1 active device"
	}
	return fmt.Sprintf("%d active devices", *n)
}
