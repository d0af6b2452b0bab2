package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/devicegate/devicegate/enroll/client"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

const adminUsage = `devicegate admin [--config F | --data DIR] <command>
  store add NAME [--display NAME]
  store list [--json]
  owner set STORE [--password-file F] [--reset-phone]
  sub add STORE:NAME --role ROLE [--grant P,...] [--password-file F]
  sub list STORE [--search S] [--json]
  sub show STORE:NAME [--json]
  sub phone STORE:NAME
  sub protect STORE:NAME --devices N | --off
  sub ticket STORE:NAME
  sub devices STORE:NAME [--json]
  sub depart|restore|freeze STORE:NAME
  sub revoke-all STORE:NAME [--reason R]
  device revoke SERIAL|DEVICE-ID [--reason R]
  device allow-renew STORE SERIAL|DEVICE-ID [--for 7d]
  proxy list [--json]
  proxy revoke NAME|SERIAL [--reason R]
  audit STORE [--target T] [--json]
  audit verify STORE`

// cliActor records the operator CLI in the audit log.
func cliActor() store.Actor {
	name := "admin-cli"
	if u := os.Getenv("USER"); u != "" {
		name += ":" + u
	}
	return store.Actor{Kind: "cli", Name: name}
}

func runAdmin(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("admin", env.stderr)
	configPath := fs.String("config", "", "config file")
	dataDir := fs.String("data", "", "data directory (instead of --config)")
	fs.Usage = func() { fmt.Fprintln(env.stderr, adminUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		return fmt.Errorf("usage: %s", adminUsage)
	}
	a, err := openApp(ctx, *configPath, *dataDir, openOptions{})
	if err != nil {
		return err
	}
	defer a.Close()
	cmd := rest[0] + " " + rest[1]
	args = rest[2:]
	switch cmd {
	case "store add":
		return a.adminStoreAdd(ctx, args, env)
	case "store list":
		return a.adminStoreList(ctx, args, env)
	case "owner set":
		return a.adminOwnerSet(ctx, args, env)
	case "sub add":
		return a.adminSubAdd(ctx, args, env)
	case "sub list":
		return a.adminSubList(ctx, args, env)
	case "sub show":
		return a.adminSubShow(ctx, args, env)
	case "sub phone":
		return a.adminSubPhone(ctx, args, env)
	case "sub protect":
		return a.adminSubProtect(ctx, args, env)
	case "sub ticket":
		return a.adminSubTicket(ctx, args, env)
	case "sub devices":
		return a.adminSubDevices(ctx, args, env)
	case "sub depart", "sub restore", "sub freeze":
		return a.adminSubStatus(ctx, rest[1], args, env)
	case "sub revoke-all":
		return a.adminSubRevokeAll(ctx, args, env)
	case "device revoke":
		return a.adminDeviceRevoke(ctx, args, env)
	case "device allow-renew":
		return a.adminDeviceAllowRenew(ctx, args, env)
	case "proxy list":
		return a.adminProxyList(ctx, args, env)
	case "proxy revoke":
		return a.adminProxyRevoke(ctx, args, env)
	case "audit verify":
		return a.adminAuditVerify(ctx, args, env)
	}
	if rest[0] == "audit" {
		return a.adminAudit(ctx, rest[1:], env)
	}
	return fmt.Errorf("unknown admin command %q\nusage: %s", cmd, adminUsage)
}

// resolveSub finds "store:name" and returns tenant and sub-account.
func (a *app) resolveSub(ctx context.Context, full string) (store.Tenant, store.SubAccount, error) {
	tenantName, subName, err := identity.SplitFullName(full)
	if err != nil {
		return store.Tenant{}, store.SubAccount{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	t, err := a.store.GetTenantByName(ctx, tenantName)
	if err != nil {
		return store.Tenant{}, store.SubAccount{}, fmt.Errorf("store %q: %w", tenantName, err)
	}
	s, err := a.store.GetSubAccountByName(ctx, t.ID, subName)
	if err != nil {
		return t, store.SubAccount{}, fmt.Errorf("sub-account %q: %w", full, err)
	}
	return t, s, nil
}

func (a *app) adminStoreAdd(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("store add", env.stderr)
	display := fs.String("display", "", "display name")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "store add NAME"); err != nil {
		return err
	}
	t, err := a.store.CreateTenant(ctx, store.NewTenant{Name: pos[0], DisplayName: *display}, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "store %s created (id %s)\n", t.Name, t.ID)
	return nil
}

func (a *app) adminStoreList(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("store list", env.stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "store list [--json]"); err != nil {
		return err
	}
	ts, err := a.store.ListTenants(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
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

func (a *app) adminSubAdd(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("sub add", env.stderr)
	role := fs.String("role", "", "position: "+strings.Join(a.catalog.RoleKeys(), ", "))
	grants := fs.String("grant", "", "supplementary permission points, comma-separated")
	pwFile := fs.String("password-file", "", "file whose first line is the password (default: generate and print one)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "sub add STORE:NAME --role ROLE [--grant P,...] [--password-file F]"); err != nil {
		return err
	}
	var grantList []string
	if *grants != "" {
		grantList = strings.Split(*grants, ",")
	}
	if err := a.catalog.ValidateGrants(*role, grantList); err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	tenantName, subName, err := identity.SplitFullName(pos[0])
	if err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	t, err := a.store.GetTenantByName(ctx, tenantName)
	if err != nil {
		return fmt.Errorf("store %q: %w", tenantName, err)
	}
	pw, generated, hash, err := passwordFrom(*pwFile)
	if err != nil {
		return err
	}
	s, err := a.store.CreateSubAccount(ctx, store.NewSubAccount{
		TenantID: t.ID, Name: subName, Role: *role, Grants: grantList, PasswordHash: hash,
	}, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "sub-account %s created (id %s, role %s)\n", s.FullName(), s.ID, s.Role)
	if generated {
		fmt.Fprintf(env.stdout, "password: %s\n", pw)
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
// password, and with --reset-phone a new phone binding at the next login
// (the portal then shows the TOTP QR code once).
func (a *app) adminOwnerSet(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("owner set", env.stderr)
	pwFile := fs.String("password-file", "", "file whose first line is the password (default: generate and print one)")
	resetPhone := fs.Bool("reset-phone", false, "forget the owner's TOTP phone binding; the next portal login binds a phone again")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "owner set STORE [--password-file F] [--reset-phone]"); err != nil {
		return err
	}
	t, err := a.store.GetTenantByName(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("store %q: %w", pos[0], err)
	}
	pw, generated, hash, err := passwordFrom(*pwFile)
	if err != nil {
		return err
	}
	secret := t.OwnerTOTPSecret
	if *resetPhone {
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
		Installed: store.CountActive(devs, time.Now()), NotBefore: s.Window.NotBefore, NotAfter: s.Window.NotAfter,
	}, nil
}

func (a *app) adminSubList(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("sub list", env.stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	search := fs.String("search", "", "name substring")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "sub list STORE [--search S] [--json]"); err != nil {
		return err
	}
	t, err := a.store.GetTenantByName(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("store %q: %w", pos[0], err)
	}
	subs, err := a.store.ListSubAccounts(ctx, t.ID, store.SubAccountFilter{Search: *search})
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
	if *asJSON {
		return printJSON(env, views)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSTATUS\tPHONE\tCERTIFICATE")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Role, v.Status, onOff(v.Phone), protectionText(v))
	}
	return tw.Flush()
}

func (a *app) adminSubShow(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("sub show", env.stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "sub show STORE:NAME [--json]"); err != nil {
		return err
	}
	_, s, err := a.resolveSub(ctx, pos[0])
	if err != nil {
		return err
	}
	v, err := a.subView(ctx, s)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env, v)
	}
	fmt.Fprintf(env.stdout, "%s  role %s  status %s  phone %s  certificate %s\n", v.Name, v.Role, v.Status, onOff(v.Phone), protectionText(v))
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

func (a *app) adminSubPhone(ctx context.Context, args []string, env *cliEnv) error {
	if err := wantArgs(args, 1, "sub phone STORE:NAME"); err != nil {
		return err
	}
	t, s, err := a.resolveSub(ctx, args[0])
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

func (a *app) adminSubProtect(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("sub protect", env.stderr)
	n := fs.Int("devices", 0, "N: how many computers may hold a certificate (1..5)")
	off := fs.Bool("off", false, "turn certificate protection off")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "sub protect STORE:NAME --devices N | --off"); err != nil {
		return err
	}
	p := store.Protection{Enabled: !*off, MaxDevices: *n}
	if !*off && (*n < 1 || *n > store.MaxDevicesLimit) {
		return fmt.Errorf("%w: --devices must be between 1 and %d", store.ErrInvalid, store.MaxDevicesLimit)
	}
	t, s, err := a.resolveSub(ctx, pos[0])
	if err != nil {
		return err
	}
	if *off {
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

func (a *app) adminSubTicket(ctx context.Context, args []string, env *cliEnv) error {
	if err := wantArgs(args, 1, "sub ticket STORE:NAME"); err != nil {
		return err
	}
	if a.ca == nil {
		return errNoCA
	}
	t, s, err := a.resolveSub(ctx, args[0])
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

type deviceJSON struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	Status      string    `json:"status"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	EnrolledIP  string    `json:"enrolled_ip,omitempty"`
	EnrolledUA  string    `json:"enrolled_ua,omitempty"`
	LastSeenAt  time.Time `json:"last_seen_at,omitzero"`
	LastSeenIP  string    `json:"last_seen_ip,omitempty"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	Reason      string    `json:"revocation_reason,omitempty"`
	// RenewAllowedUntil: the owner allowed one early renewal before then.
	RenewAllowedUntil time.Time `json:"renew_allowed_until,omitzero"`
}

func deviceView(d store.Device, now time.Time) deviceJSON {
	status := string(d.Status)
	if d.Status == store.DeviceActive && !d.ActiveAt(now) {
		status = "expired"
	}
	v := deviceJSON{ID: d.ID, Label: d.Label, Status: status, Serial: d.Serial, Fingerprint: d.Fingerprint,
		IssuedAt: d.IssuedAt, ExpiresAt: d.ExpiresAt, EnrolledIP: d.EnrolledIP, EnrolledUA: d.EnrolledUA,
		LastSeenAt: d.LastSeenAt, LastSeenIP: d.LastSeenIP, RevokedAt: d.RevokedAt, RenewAllowedUntil: d.RenewAllowedUntil}
	if d.Status == store.DeviceRevoked {
		v.Reason = reasonName(d.Reason)
	}
	return v
}

func (a *app) adminSubDevices(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("sub devices", env.stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "sub devices STORE:NAME [--json]"); err != nil {
		return err
	}
	t, s, err := a.resolveSub(ctx, pos[0])
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
	if *asJSON {
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

func (a *app) adminSubStatus(ctx context.Context, verb string, args []string, env *cliEnv) error {
	if err := wantArgs(args, 1, "sub "+verb+" STORE:NAME"); err != nil {
		return err
	}
	status := map[string]store.SubStatus{"depart": store.StatusDeparted, "restore": store.StatusActive, "freeze": store.StatusFrozen}[verb]
	if a.ca == nil {
		return errNoCA
	}
	t, s, err := a.resolveSub(ctx, args[0])
	if err != nil {
		return err
	}
	s, revs, err := a.ca.SetStatus(ctx, t.ID, s.ID, status, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s is %s", s.FullName(), s.Status)
	if len(revs) > 0 {
		fmt.Fprintf(env.stdout, "; %d device certificate(s) revoked", len(revs))
	}
	fmt.Fprintln(env.stdout)
	return nil
}

// revokeArgs parses "<one target> [--reason R]" of the revoke commands and
// checks that this data directory has a CA to revoke with.
func (a *app) revokeArgs(name, usage, defaultReason string, args []string, env *cliEnv) (string, store.RevocationReason, error) {
	fs := newFlagSet(name, env.stderr)
	reason := fs.String("reason", defaultReason, "RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn (or its number)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return "", 0, err
	}
	if err := wantArgs(pos, 1, usage); err != nil {
		return "", 0, err
	}
	r, err := parseReason(*reason)
	if err != nil {
		return "", 0, err
	}
	if a.ca == nil {
		return "", 0, errNoCA
	}
	return pos[0], r, nil
}

func (a *app) adminSubRevokeAll(ctx context.Context, args []string, env *cliEnv) error {
	target, r, err := a.revokeArgs("sub revoke-all", "sub revoke-all STORE:NAME [--reason R]", "cessationOfOperation", args, env)
	if err != nil {
		return err
	}
	t, s, err := a.resolveSub(ctx, target)
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

func (a *app) adminDeviceRevoke(ctx context.Context, args []string, env *cliEnv) error {
	target, r, err := a.revokeArgs("device revoke", "device revoke SERIAL|DEVICE-ID [--reason R]", "unspecified", args, env)
	if err != nil {
		return err
	}
	d, err := a.store.FindDevice(ctx, target)
	if err != nil {
		return fmt.Errorf("device %q: %w", target, err)
	}
	rv, err := a.ca.RevokeDevice(ctx, d.TenantID, d.ID, r, cliActor())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "device %s revoked (serial %s, reason %s, seq %d)\n", d.ID, rv.Serial, reasonName(rv.Reason), rv.Seq)
	return nil
}

// adminDeviceAllowRenew lets one device of STORE renew once before its
// certificate is near its end, within --for (default 7 days, at most
// store.MaxRenewAllowance). A device of another store is not found in STORE.
func (a *app) adminDeviceAllowRenew(ctx context.Context, args []string, env *cliEnv) error {
	const usage = "device allow-renew STORE SERIAL|DEVICE-ID [--for 7d]"
	fs := newFlagSet("device allow-renew", env.stderr)
	forText := fs.String("for", "7d", "how long the permission lasts: days (7d) or a Go duration (36h), at most 30d")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 2, usage); err != nil {
		return err
	}
	d, err := parseDays(*forText)
	if err != nil || d <= 0 || d > store.MaxRenewAllowance {
		return fmt.Errorf("%w: --for must be a duration between 1s and 30d, like 7d or 36h", store.ErrInvalid)
	}
	t, err := a.store.GetTenantByName(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("store %q: %w", pos[0], err)
	}
	// FindDevice looks across stores: a device of another store is
	// answered exactly like one that does not exist.
	notFound := fmt.Errorf("device %q in store %q: %w", pos[1], t.Name, store.ErrNotFound)
	dev, err := a.store.FindDevice(ctx, pos[1])
	if errors.Is(err, store.ErrNotFound) || (err == nil && dev.TenantID != t.ID) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("device %q: %w", pos[1], err)
	}
	dev, err = a.store.AllowEarlyRenewal(ctx, t.ID, dev.ID, time.Now().Add(d), cliActor())
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("device %q: %w", pos[1], err)
	}
	fmt.Fprintf(env.stdout, "device %s (serial %s) may renew once before %s\n", dev.ID, dev.Serial, dev.RenewAllowedUntil.Format(time.RFC3339))
	return nil
}

// parseDays reads "7d" (days) or a Go duration ("36h").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("bad number of days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

var reasonNames = map[string]store.RevocationReason{
	"unspecified":          store.ReasonUnspecified,
	"keyCompromise":        store.ReasonKeyCompromise,
	"affiliationChanged":   store.ReasonAffiliationChanged,
	"superseded":           store.ReasonSuperseded,
	"cessationOfOperation": store.ReasonCessationOfOperation,
	"privilegeWithdrawn":   store.ReasonPrivilegeWithdrawn,
}

func parseReason(s string) (store.RevocationReason, error) {
	for name, r := range reasonNames {
		if strings.EqualFold(name, s) {
			return r, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil {
		for _, r := range reasonNames {
			if int(r) == n {
				return r, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: unknown revocation reason %q", store.ErrInvalid, s)
}

func reasonName(r store.RevocationReason) string {
	for name, v := range reasonNames {
		if v == r {
			return name
		}
	}
	return strconv.Itoa(int(r))
}

func (a *app) adminAudit(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("audit", env.stderr)
	asJSON := fs.Bool("json", false, "JSON output")
	target := fs.String("target", "", "only events about this target")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "audit STORE [--target T] [--json]"); err != nil {
		return err
	}
	t, err := a.store.GetTenantByName(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("store %q: %w", pos[0], err)
	}
	evs, err := a.store.ListAudit(ctx, t.ID, store.AuditFilter{Target: *target})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env, evs)
	}
	for _, e := range evs {
		fmt.Fprintf(env.stdout, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Actor.Name, e.Action, e.Target, e.Outcome)
	}
	return nil
}

func (a *app) adminAuditVerify(ctx context.Context, args []string, env *cliEnv) error {
	if err := wantArgs(args, 1, "audit verify STORE"); err != nil {
		return err
	}
	t, err := a.store.GetTenantByName(ctx, args[0])
	if err != nil {
		return fmt.Errorf("store %q: %w", args[0], err)
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

func printJSON(env *cliEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var errNoCA = errors.New("the CA is not initialized in this data directory (run `devicegate ca init` or start `devicegate demo` once)")
