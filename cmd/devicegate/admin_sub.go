package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

func (a *app) adminSubAdd(ctx context.Context, full, role, grants, pwFile, from, until string, env *cliEnv) error {
	if role == "" {
		return fmt.Errorf("%w: --position is required (one of: %s)", store.ErrInvalid, strings.Join(a.catalog.RoleKeys(), ", "))
	}
	window, err := parseWindow(from, until, time.Local)
	if err != nil {
		return err
	}
	var grantList []string
	if grants != "" {
		grantList = strings.Split(grants, ",")
	}
	if err := a.catalog.ValidateGrants(role, grantList); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	tenantName, subName, err := identity.SplitFullName(full)
	if err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	t, err := a.store.GetTenantByName(ctx, tenantName)
	if err != nil {
		return fmt.Errorf("store %q: %w", tenantName, err)
	}
	pw, generated, hash, err := passwordFrom(pwFile)
	if err != nil {
		return err
	}
	s, err := a.store.CreateSubAccount(ctx, store.NewSubAccount{
		TenantID: t.ID, Name: subName, Role: role, Grants: grantList, PasswordHash: hash, Window: window, VerifyBy: verifyBy(window),
	}, cliActor())
	if err != nil {
		return nameTaken(tenantName, subName, err)
	}
	fmt.Fprintf(env.stdout, "sub-account %s created (id %s, position %s)\n", s.FullName(), s.ID, s.Role)
	if s.Temporary() {
		fmt.Fprintf(env.stdout, "%s: access ends by itself at the window's end; extend with `sub window`\n", windowText(s.Window))
	}
	if generated {
		fmt.Fprintf(env.stdout, "password: %s\n", pw)
	}
	return a.printVerifyLink(ctx, s, env)
}

type subJSON struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Grants     []string  `json:"grants"`
	Status     string    `json:"status"`
	Phone      bool      `json:"phone_verification"`
	Protection bool      `json:"certificate_protection"`
	MaxDevices int       `json:"max_devices"`
	Installed  int       `json:"installed"`
	NotBefore  time.Time `json:"not_before,omitzero"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	Temporary  bool      `json:"temporary"`
}

func (a *app) subView(ctx context.Context, s store.SubAccount) (subJSON, error) {
	devs, err := a.store.ListDevices(ctx, s.TenantID, s.ID)
	if err != nil {
		return subJSON{}, err
	}
	grants := s.Grants
	if grants == nil {
		grants = []string{}
	}
	return subJSON{
		ID: s.ID, Name: s.FullName(), Role: s.Role, Grants: grants, Status: string(s.Status),
		Phone: s.PhoneEnabled, Protection: s.Protection.Enabled, MaxDevices: s.Protection.MaxDevices,
		Installed: store.CountActive(devs, time.Now()), NotBefore: s.Window.NotBefore, NotAfter: s.Window.NotAfter, Temporary: s.Temporary(),
	}, nil
}

func (a *app) adminSubList(ctx context.Context, storeName, search string, asJSON bool, env *cliEnv) error {
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	subs, err := a.store.ListSubAccounts(ctx, t.ID, store.SubAccountFilter{Search: search})
	if err != nil {
		return err
	}
	views := make([]subJSON, 0, len(subs))
	for _, s := range subs {
		v, err := a.subView(ctx, s)
		if err != nil {
			return err
		}
		views = append(views, v)
	}
	if asJSON {
		return printJSON(env, views)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPOSITION\tSTATUS\tPHONE\tCERTIFICATE\tWINDOW")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Role, v.Status, onOff(v.Phone), protectionText(v),
			windowText(store.Window{NotBefore: v.NotBefore, NotAfter: v.NotAfter}))
	}
	return tw.Flush()
}

func (a *app) adminSubShow(ctx context.Context, full string, asJSON bool, env *cliEnv) error {
	_, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	v, err := a.subView(ctx, s)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, v)
	}
	fmt.Fprintf(env.stdout, "%s  position %s  status %s  phone %s  certificate %s  window %s\n", v.Name, v.Role, v.Status, onOff(v.Phone), protectionText(v),
		windowText(store.Window{NotBefore: v.NotBefore, NotAfter: v.NotAfter}))
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// protectionText renders the seeds' "Installed (k/N)".
func protectionText(v subJSON) string {
	if !v.Protection {
		return "off"
	}
	return fmt.Sprintf("Installed (%d/%d)", v.Installed, v.MaxDevices)
}

func (a *app) adminSubPhone(ctx context.Context, full string, env *cliEnv) error {
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	uri, err := a.enablePhone(ctx, t, s)
	if err != nil {
		return err
	}
	// The URI holds the TOTP secret: it is printed once, for the staff
	// member's phone, and never logged.
	fmt.Fprintln(env.stdout, uri)
	return nil
}

// enablePhone gives the sub-account a new TOTP secret (phone verification)
// and returns its otpauth:// URI.
func (a *app) enablePhone(ctx context.Context, t store.Tenant, s store.SubAccount) (string, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "devicegate " + t.Name, AccountName: s.FullName()})
	if err != nil {
		return "", err
	}
	if _, err := a.store.EnablePhone(ctx, t.ID, s.ID, []byte(key.Secret()), cliActor()); err != nil {
		return "", err
	}
	return key.URL(), nil
}

func (a *app) adminSubProtect(ctx context.Context, full string, n int, off bool, env *cliEnv) error {
	p := store.Protection{Enabled: !off, MaxDevices: n}
	switch {
	case off && n != 0:
		return fmt.Errorf("%w: give --devices N or --off, not both", store.ErrInvalid)
	case !off && n == 0:
		return fmt.Errorf("%w: --devices N (1..%d) is required, or --off to turn certificate protection off", store.ErrInvalid, store.MaxDevicesLimit)
	}
	if !off && (n < 1 || n > store.MaxDevicesLimit) {
		return fmt.Errorf("%w: --devices must be between 1 and %d", store.ErrInvalid, store.MaxDevicesLimit)
	}
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	if off {
		p.MaxDevices = s.Protection.MaxDevices
	}
	s, err = a.store.SetProtection(ctx, t.ID, s.ID, p, cliActor())
	if err != nil {
		return err
	}
	v, err := a.subView(ctx, s)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: certificate protection %s\n", s.FullName(), protectionText(v))
	return nil
}

func (a *app) adminSubTicket(ctx context.Context, full string, env *cliEnv) error {
	if a.ca == nil {
		return errNoCA
	}
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	if err := store.Eligible(s, time.Now(), time.Time{}); err != nil {
		return err
	}
	code, _, err := a.ca.CreateTicket(ctx, t.ID, s.ID, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, code)
	return nil
}

func (a *app) adminSubDevices(ctx context.Context, full string, asJSON bool, env *cliEnv) error {
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	devs, err := a.store.ListDevices(ctx, t.ID, s.ID)
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]deviceJSON, 0, len(devs))
	for _, d := range devs {
		views = append(views, deviceView(d, now))
	}
	if asJSON {
		return printJSON(env, map[string]any{
			"subaccount": s.FullName(), "installed": store.CountActive(devs, now),
			"limit": s.Protection.MaxDevices, "protection": s.Protection.Enabled, "devices": views,
		})
	}
	fmt.Fprintf(env.stdout, "%s: Installed (%d/%d)\n", s.FullName(), store.CountActive(devs, now), s.Protection.MaxDevices)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tLABEL\tSTATUS\tSERIAL\tEXPIRES")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Label, v.Status, v.Serial, v.ExpiresAt.Format(time.DateOnly))
	}
	return tw.Flush()
}

// adminSubStatus is sub depart, restore and freeze.
func (a *app) adminSubStatus(ctx context.Context, full string, status store.SubStatus, wait waitOptions, env *cliEnv) error {
	if a.ca == nil {
		return errNoCA
	}
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	w := a.startWaiter(ctx, wait)
	s, revs, err := a.ca.SetStatus(ctx, t.ID, s.ID, status, cliActor())
	if err != nil {
		w.stopEarly()
		return err
	}
	stillRevoked, err := a.revokedDevices(ctx, s)
	if err != nil {
		return err
	}
	if _, err = fmt.Fprint(env.stdout, subStatusText(s, revs, stillRevoked)); err != nil {
		return err
	}
	seq := s.ChangeSeq // the status change; the revocations come with it
	for _, r := range revs {
		seq = max(seq, r.Seq)
	}
	return w.finish(ctx, string(s.Status), seq, waitTimeout(wait), env)
}

// waitTimeout is --timeout (unused without --wait).
func waitTimeout(o waitOptions) time.Duration {
	if o.timeout == nil {
		return 0
	}
	return *o.timeout
}

func (a *app) adminSubRevokeAll(ctx context.Context, full, reason string, env *cliEnv) error {
	r, err := a.revocation(reason)
	if err != nil {
		return err
	}
	t, s, err := a.resolveSub(ctx, full)
	if err != nil {
		return err
	}
	revs, err := a.ca.RevokeSubAccount(ctx, t.ID, s.ID, r, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: %d device certificate(s) revoked\n", s.FullName(), len(revs))
	return nil
}
