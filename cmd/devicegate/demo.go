package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/internal/atomicfile"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

const demoStoreName = "demo-store"

// demoUser is a seeded sub-account's first-login credential (demo only).
type demoUser struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	// TOTPURI is the phone-verification secret (otpauth://), demo only:
	// add it to an authenticator app to log in to the portal as this user.
	TOTPURI string `json:"totp_uri,omitempty"`
}

// demoCredentials are generated once and reused on every later start.
type demoCredentials struct {
	OwnerStore    string     `json:"owner_store"`
	OwnerPassword string     `json:"owner_password"`
	Users         []demoUser `json:"users"`
}

// demoInfo is written to DIR/demo.json for people and tests.
type demoInfo struct {
	CAURL           string     `json:"ca_url"`
	PortalURL       string     `json:"portal_url"`
	OwnerConsoleURL string     `json:"owner_console_url,omitempty"` // portal.owner_listen, when set
	ProxyURL        string     `json:"proxy_url"`
	BackofficeURL   string     `json:"backoffice_url"`
	MetricsURL      string     `json:"metrics_url"`
	CRLURL          string     `json:"crl_url"`
	RootCAFile      string     `json:"root_ca_file"`
	RootFingerprint string     `json:"root_fingerprint"`
	Store           string     `json:"store"`
	OwnerPassword   string     `json:"owner_password"`
	BackofficeUsers []demoUser `json:"backoffice_users"`
}

// demoSubAccounts are seeded into demo-store: name, role, N (0 = not protected).
var demoSubAccounts = []struct {
	name, role string
	devices    int
}{
	{"alice", "customer-service", 2},
	{"bob", "operations", 1},
	{"carol", "finance", 0},
}

// demoAppOnlyUsers have an account in the demo back-office app but no
// devicegate sub-account yet: the owner creates it in the portal (same
// name) to walk through the whole flow, as in the browser end-to-end test.
var demoAppOnlyUsers = []string{"dave"}

func demoFlags(fs *flag.FlagSet) commandRun {
	dataDir := fs.String("data", "", "data directory `DIR` (default ./devicegate-data)")
	configPath := fs.String("config", "", "config file `F` (instead of --data)")
	logLevel := fs.String("log-level", "info", "log level `L`: debug, info, warn or error")
	return func(ctx context.Context, _ []string, env *cliEnv) error {
		return runDemo(ctx, *configPath, *dataDir, *logLevel, env)
	}
}

func runDemo(ctx context.Context, configPath, dataDir, logLevel string, env *cliEnv) error {
	log := newLogger(env, logLevel, "text")
	a, err := openApp(ctx, configPath, dataDir, openOptions{initCA: true, log: log})
	if err != nil {
		return err
	}
	defer a.Close() // after r.run: every component has stopped
	creds, err := a.seedDemo(ctx)
	if err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	var r role
	caSrv, err := a.startCA(ctx, &r, log)
	if err != nil {
		return err
	}
	a.exportCAMetrics(caSrv) // beside the proxy's, on its admin listener
	bo, err := startBackoffice(a.cfg.Demo.BackofficeListen, creds.Users, log)
	if err != nil {
		return err
	}
	portal, err := a.startPortal(ctx, log)
	if err != nil {
		return err
	}
	// The refusal page links to this portal, wherever it listens.
	a.cfg.Proxy.EnrollURL = portal.URL() + "/"
	gw, err := a.startGateway(ctx, &r, []config.Upstream{demoUpstream(bo.URL())}, log)
	if err != nil {
		return err
	}
	owner, err := a.startOwnerConsole(ctx, log)
	if err != nil {
		return err
	}
	handler, err := a.portalHandler(gw.proxy.URL()+"/", a.ownerConsoleURL(owner), log)
	if err != nil {
		return err
	}
	portalServers := servePortal(handler, portal, owner)

	info := demoInfo{
		CAURL:           caSrv.URL(),
		PortalURL:       portal.URL() + "/",
		OwnerConsoleURL: a.ownerConsoleURL(owner),
		BackofficeURL:   bo.URL(),
		ProxyURL:        gw.proxy.URL(),
		MetricsURL:      gw.admin.URL() + "/metrics",
		CRLURL:          caSrv.URL() + "/crl.pem",
		RootCAFile:      filepath.Join(a.cfg.CA.Dir, ca.RootCertFile),
		RootFingerprint: ca.Fingerprint(a.ca.Keys().Root),
		Store:           creds.OwnerStore,
		OwnerPassword:   creds.OwnerPassword,
		BackofficeUsers: creds.Users,
	}
	infoPath := filepath.Join(a.cfg.DataDir, "demo.json")
	if err := writeJSONFile(infoPath, info); err != nil {
		return err
	}
	printDemoInfo(env, info, infoPath)
	r.own("verify deadlines", a.verifyDeadlines(log).Run)
	r.serve(caSrv.serve, bo.serve, gw.proxy.serve, gw.admin.serve)
	r.serve(portalServers...)
	return r.run(ctx)
}

func printDemoInfo(env *cliEnv, info demoInfo, infoPath string) {
	w := env.stdout
	fmt.Fprintln(w, "devicegate demo is running (Ctrl-C stops it)")
	fmt.Fprintf(w, "  portal               %s (owner console, staff certificate installation)\n", info.PortalURL)
	if info.OwnerConsoleURL != "" {
		fmt.Fprintf(w, "  owner console        %s (asks for the owner's own certificate)\n", info.OwnerConsoleURL)
	}
	fmt.Fprintf(w, "  CA / enrollment API  %s\n", info.CAURL)
	fmt.Fprintf(w, "  CRL                  %s\n", info.CRLURL)
	fmt.Fprintf(w, "  mTLS proxy           %s (the back-office app with device-certificate checks)\n", info.ProxyURL)
	fmt.Fprintf(w, "  back-office app      %s (direct, loopback only)\n", info.BackofficeURL)
	fmt.Fprintf(w, "  metrics              %s\n", info.MetricsURL)
	fmt.Fprintf(w, "  root CA              %s\n", info.RootCAFile)
	fmt.Fprintf(w, "  root fingerprint     %s\n", info.RootFingerprint)
	fmt.Fprintf(w, "  owner login          store %s, password %s (portal)\n", info.Store, info.OwnerPassword)
	for _, u := range info.BackofficeUsers {
		if slices.Contains(demoAppOnlyUsers, strings.TrimPrefix(u.Name, info.Store+":")) {
			fmt.Fprintf(w, "  app-only login       %s, password %s (back-office app only: no sub-account yet; "+
				"create it in the portal or with the CLI, and its portal password is the one you set then)\n", u.Name, u.Password)
			continue
		}
		fmt.Fprintf(w, "  staff login          %s, password %s (portal and back-office app)\n", u.Name, u.Password)
	}
	fmt.Fprintf(w, "  everything above     %s\n", infoPath)
	fmt.Fprintf(w, "\nNext: open the portal at %s and log in as the owner (store %s, password above),\n"+
		"or follow the README's CLI walkthrough in another terminal.\n", info.PortalURL, info.Store)
}

// seedDemo creates demo-store and its sub-accounts on the first start and
// returns the credentials saved then.
func (a *app) seedDemo(ctx context.Context) (demoCredentials, error) {
	credPath := filepath.Join(a.cfg.DataDir, "demo-credentials.json")
	var creds demoCredentials
	if data, err := os.ReadFile(credPath); err == nil {
		if err := json.Unmarshal(data, &creds); err != nil {
			return creds, fmt.Errorf("%s: %w", credPath, err)
		}
		return creds, nil
	}
	t, err := a.store.GetTenantByName(ctx, demoStoreName)
	if errors.Is(err, store.ErrNotFound) {
		t, err = a.store.CreateTenant(ctx, store.NewTenant{Name: demoStoreName, DisplayName: "Demo Store"}, cliActor())
	}
	if err != nil {
		return creds, err
	}
	creds = demoCredentials{OwnerStore: t.Name, OwnerPassword: secrets.RandomPassword()}
	hash, err := secrets.HashPassword(creds.OwnerPassword)
	if err != nil {
		return creds, err
	}
	if err := a.store.SetOwnerLogin(ctx, t.ID, hash, nil, cliActor()); err != nil {
		return creds, err
	}
	for _, d := range demoSubAccounts {
		pw := secrets.RandomPassword()
		uri, err := a.seedSub(ctx, t, d.name, d.role, d.devices, pw)
		if err != nil {
			return creds, err
		}
		creds.Users = append(creds.Users, demoUser{Name: t.Name + ":" + d.name, Password: pw, TOTPURI: uri})
	}
	for _, name := range demoAppOnlyUsers {
		creds.Users = append(creds.Users, demoUser{Name: t.Name + ":" + name, Password: secrets.RandomPassword()})
	}
	return creds, writeJSONFile(credPath, creds)
}

// seedSub creates (or resets) a demo sub-account; with devices > 0 it gets
// phone verification (its otpauth URI is returned) and protection with N.
func (a *app) seedSub(ctx context.Context, t store.Tenant, name, role string, devices int, pw string) (string, error) {
	hash, err := secrets.HashPassword(pw)
	if err != nil {
		return "", err
	}
	s, err := a.store.GetSubAccountByName(ctx, t.ID, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s, err = a.store.CreateSubAccount(ctx, store.NewSubAccount{TenantID: t.ID, Name: name, Role: role, PasswordHash: hash}, cliActor())
	case err == nil:
		err = a.store.SetPassword(ctx, t.ID, s.ID, hash, cliActor())
	}
	if err != nil || devices == 0 {
		return "", err
	}
	uri, err := a.enablePhone(ctx, t, s)
	if err != nil {
		return "", err
	}
	_, err = a.store.SetProtection(ctx, t.ID, s.ID, store.Protection{Enabled: true, MaxDevices: devices}, cliActor())
	return uri, err
}

// writeJSONFile writes v as indented JSON, readable by the owner only
// (demo files hold first-login passwords).
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}
