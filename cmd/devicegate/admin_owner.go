package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/store"
)

// ownerAndVerifyCommands are the owner-certificate recovery and the
// owner's real-person verification steps (issue 13 items 4 and 1).
func ownerAndVerifyCommands() []adminCommand {
	verify := func(action string) func(*flag.FlagSet) adminRun {
		return func(fs *flag.FlagSet) adminRun {
			var reason *string
			if action == "reject" {
				reason = fs.String("reason", "", "why, `R` (1..200 characters; the staff member sees it)")
			}
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				r := ""
				if reason != nil {
					r = *reason
				}
				return a.adminSubVerify(ctx, pos[0], action, r, env)
			}
		}
	}
	return []adminCommand{
		{"owner cert-required", "STORE --on | --off", "require the owner's own device certificate for owner pages, or not (--off: the way back after a lost computer)", func(fs *flag.FlagSet) adminRun {
			on := fs.Bool("on", false, "require it (the owner must have an active owner computer)")
			off := fs.Bool("off", false, "stop requiring it")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminOwnerCertRequired(ctx, pos[0], *on, *off, env)
			}
		}},
		{"sub verify approve", "STORE:NAME", "approve a real-person verification under review (as the owner console does)", verify("approve")},
		{"sub verify reject", "STORE:NAME --reason R", "reject a real-person verification under review, with the reason shown to the staff member", verify("reject")},
		{"sub verify unfreeze", "STORE:NAME", "lift a verification freeze for 2 days", verify("unfreeze")},
		{"sub verify unbind", "STORE:NAME", "release (解除) the verified person; the sub-account gets a new verification link", verify("unbind")},
	}
}

func (a *app) adminOwnerCertRequired(ctx context.Context, name string, on, off bool, env *cliEnv) error {
	if on == off {
		return fmt.Errorf("%w: give exactly one of --on and --off", store.ErrInvalid)
	}
	t, err := a.store.GetTenantByName(ctx, name)
	if err != nil {
		return fmt.Errorf("store %q: %w", name, err)
	}
	t, err = a.store.SetOwnerCertRequired(ctx, t.ID, on, time.Now(), cliActor())
	var ne *store.NotEligibleError
	if errors.As(err, &ne) {
		return fmt.Errorf("store %s: the owner has no active owner computer; install one first (owner console, My computers): %w", name, err)
	}
	if err != nil {
		return err
	}
	state := "not required"
	if t.OwnerCertRequired {
		state = "required"
	}
	fmt.Fprintf(env.stdout, "store %s: the owner's own certificate is %s for owner pages\n", t.Name, state)
	return nil
}

// adminSubVerify runs one owner verification step through the rules the
// owner console uses (enroll.VerifyActions), audited as the CLI.
func (a *app) adminSubVerify(ctx context.Context, full, action, reason string, env *cliEnv) error {
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	acts := enroll.VerifyActions{Store: a.store, Now: clockNow()}
	var v store.Verification
	switch action {
	case "approve":
		v, err = acts.Approve(ctx, t.ID, s.ID, cliActor())
	case "reject":
		v, err = acts.Reject(ctx, t.ID, s.ID, strings.TrimSpace(reason), cliActor())
	case "unfreeze":
		v, err = acts.Unfreeze(ctx, t.ID, s.ID, cliActor())
	case "unbind":
		v, err = acts.Unbind(ctx, t.ID, s.ID, cliActor())
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sub-account %q has no real-person verification (temporary?): %w", full, err)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, full, err)
	}
	fmt.Fprintf(env.stdout, "%s: verification %s", s.FullName(), v.State)
	if !v.Deadline.IsZero() && v.State != store.VerifyVerified {
		fmt.Fprintf(env.stdout, ", verify by %s", v.Deadline.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if action == "unbind" {
		a.printVerifyLinkOf(v, s, env)
	}
	fmt.Fprintln(env.stdout)
	return nil
}

// printVerifyLinkOf names the new link after an unbind.
func (a *app) printVerifyLinkOf(v store.Verification, s store.SubAccount, env *cliEnv) {
	portal := strings.TrimSuffix(a.cfg.Proxy.EnrollURL, "/")
	fmt.Fprintf(env.stdout, "; new link %s/verify/%s for %s", portal, v.Link, s.FullName())
}
