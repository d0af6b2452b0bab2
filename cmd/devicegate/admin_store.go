package main

import (
	"context"
	"fmt"

	"github.com/devicegate/devicegate/enroll/client"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

func (a *app) adminStoreAdd(ctx context.Context, name, display string, env *cliEnv) error {
	t, err := a.store.CreateTenant(ctx, store.NewTenant{Name: name, DisplayName: display}, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "store %s created (id %s)\n", t.Name, t.ID)
	return nil
}

func (a *app) adminStoreList(ctx context.Context, asJSON bool, env *cliEnv) error {
	ts, err := a.store.ListTenants(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]map[string]any, 0, len(ts))
		for _, t := range ts {
			out = append(out, map[string]any{"id": t.ID, "name": t.Name, "display_name": t.DisplayName, "created_at": t.CreatedAt})
		}
		return printJSON(env, out)
	}
	for _, t := range ts {
		fmt.Fprintf(env.stdout, "%s\t%s\t%s\n", t.Name, t.ID, t.DisplayName)
	}
	return nil
}

// passwordFrom reads the first line of file, or makes a random password
// (generated = true: the caller prints it once), and hashes it.
func passwordFrom(file string) (pw string, generated bool, hash string, err error) {
	if file != "" {
		if pw, err = client.ReadPasswordFile(file); err != nil {
			return "", false, "", err
		}
	} else {
		pw, generated = secrets.RandomPassword(), true
	}
	hash, err = secrets.HashPassword(pw)
	return pw, generated, hash, err
}

// adminOwnerSet bootstraps (or resets) a store owner's portal login: the
// password, and with resetPhone a new phone binding at the next login
// (the portal then shows the TOTP QR code once).
func (a *app) adminOwnerSet(ctx context.Context, name, pwFile string, resetPhone bool, env *cliEnv) error {
	t, err := a.store.GetTenantByName(ctx, name)
	if err != nil {
		return fmt.Errorf("store %q: %w", name, err)
	}
	pw, generated, hash, err := passwordFrom(pwFile)
	if err != nil {
		return err
	}
	secret := t.OwnerTOTPSecret
	if resetPhone {
		secret = nil
	}
	if err := a.store.SetOwnerLogin(ctx, t.ID, hash, secret, cliActor()); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "owner login of store %s set", t.Name)
	if secret == nil {
		fmt.Fprint(env.stdout, "; the first portal login binds the owner's phone")
	}
	fmt.Fprintln(env.stdout)
	if generated {
		fmt.Fprintf(env.stdout, "password: %s\n", pw)
	}
	return nil
}
