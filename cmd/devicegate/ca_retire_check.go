package main

import (
	"context"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/internal/config"
)

// checkNothingLeftOn refuses to retire the trusted (no longer issuing)
// device intermediate name while active devices still hold a certificate
// it issued: once it is retired, every proxy refuses those computers at
// their next handshake. It fails closed: when the devices cannot be
// counted (no database, an intermediate whose devices cannot be told
// apart) it refuses too, and --force is the operator's way past it. The
// active intermediate and unknown names are left to ca.RetireIntermediate,
// which refuses them with their own reasons.
func checkNothingLeftOn(ctx context.Context, cfg *config.Config, name string) error {
	list, err := ca.ListIntermediates(cfg.CA.Dir)
	if err != nil {
		return err
	}
	var target *ca.DeviceCA
	for i := range list {
		if list[i].Name == name && list[i].State == ca.StateTrusted {
			target = &list[i]
		}
	}
	if target == nil {
		return nil
	}
	uses, err := countIntermediateUse(ctx, cfg, list)
	if err != nil {
		return fmt.Errorf("cannot count the devices still on %s (%v): retire it with --force only if you know none are left", name, err)
	}
	for _, u := range uses.Intermediates {
		if u.Name != name {
			continue
		}
		if !u.Countable {
			return fmt.Errorf("the devices of %s cannot be told apart from another intermediate's (no key identifier of its own): check `devicegate admin intermediate list`, then retire it with --force", name)
		}
		if u.ActiveDevices > 0 {
			return fmt.Errorf("%s issued the certificates in use on %s: once it is retired, every proxy refuses those computers. Wait until they have renewed or expired (`devicegate admin intermediate list`), or retire it now with --force", name, activeDevices(&u.ActiveDevices))
		}
	}
	return nil
}

// countIntermediateUse counts the active devices of each intermediate of
// list in the configured store.
func countIntermediateUse(ctx context.Context, cfg *config.Config, list []ca.DeviceCA) (ca.IntermediateUses, error) {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return ca.IntermediateUses{}, err
	}
	defer st.Close()
	return ca.CountIntermediateUse(ctx, st, list, time.Now())
}
