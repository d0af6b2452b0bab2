package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store/postgres"
)

// runServe runs the CA node (enrollment API, CRL, OCSP, revocation feed)
// and the browser portal from a config file.
func serveFlags(fs *flag.FlagSet) commandRun {
	configPath := configFlag(fs)
	return func(ctx context.Context, _ []string, env *cliEnv) error { return runServe(ctx, *configPath, env) }
}

// configFlag is the --config of serve and proxy.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file `F` (required)")
}

func runServe(ctx context.Context, configPath string, env *cliEnv) error {
	a, log, err := openFromConfig(ctx, configPath, env)
	if err != nil {
		return err
	}
	defer a.Close() // after r.run: every component has stopped
	var r role
	srv, err := a.startCA(ctx, &r, log)
	if err != nil {
		return err
	}
	portal, err := a.startPortal(ctx, log)
	if err != nil {
		return err
	}
	owner, err := a.startOwnerConsole(ctx, log)
	if err != nil {
		return err
	}
	handler, err := a.portalHandler(a.cfg.Portal.ProxyURL, a.ownerConsoleURL(owner), log)
	if err != nil {
		return err
	}
	portalServers := servePortal(handler, portal, owner)
	log.Info("CA listening", "url", srv.URL())
	log.Info("portal listening", "url", portal.URL())
	if owner != nil {
		log.Info("owner console listening", "url", a.ownerConsoleURL(owner))
	}
	if err := a.startCertificates(ctx); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	r.own("verify deadlines", a.verifyDeadlines(log).Run)
	r.serve(srv.serve)
	r.serve(portalServers...)
	if addr := a.cfg.CA.AdminListen; addr != "" {
		a.exportCAMetrics(srv)
		admin, err := a.metrics().listenAdmin(addr, false, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "metrics_url: %s/metrics\n", admin.URL())
		r.serve(admin.serve)
	}
	fmt.Fprintf(env.stdout, "ca_url: %s\nportal_url: %s/\n", srv.URL(), portal.URL())
	if owner != nil {
		fmt.Fprintf(env.stdout, "owner_console_url: %s/\n", a.ownerConsoleURL(owner))
	}
	return r.run(ctx)
}

// openFromConfig logs as the config file says and opens the app; the
// data directory must hold a CA.
func openFromConfig(ctx context.Context, configPath string, env *cliEnv) (*app, *slog.Logger, error) {
	if configPath == "" {
		return nil, nil, errors.New("--config is required")
	}
	cfg, err := loadConfig(configPath, "")
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(env, cfg.Log.Level, cfg.Log.Format)
	a, err := openApp(ctx, configPath, "", openOptions{requireCA: true, log: log})
	if err != nil {
		return nil, nil, err
	}
	if a.ca == nil {
		a.Close()
		return nil, nil, errNoCA
	}
	return a, log, nil
}

// startCA binds the CA's HTTPS API (certificate from the internal server
// CA); r runs the CRL refresh and closes the ACME service's database.
func (a *app) startCA(ctx context.Context, r *role, log *slog.Logger) (*server, error) {
	tc, err := a.serverTLS(ctx)
	if err != nil {
		return nil, err
	}
	api := ca.NewServer(a.ca)
	api.ConfigureTLS(tc)
	closeACME := func() error { return nil }
	if len(a.cfg.CA.ACME.Hosts) > 0 {
		acmeSrv, err := a.acmeServer()
		if err != nil {
			return nil, err
		}
		api.MountACME(acmeSrv)
		closeACME = acmeSrv.Close
		log.Info("ACME service on", "directory", strings.TrimSuffix(a.cfg.CA.PublicURL, "/")+"/acme/"+ca.ACMEProvisioner+"/directory", "hosts", a.cfg.CA.ACME.Hosts)
	}
	srv, err := listen("ca", a.cfg.CA.Listen, api, tc, log)
	if err != nil {
		closeACME()
		return nil, err
	}
	r.own("crl", a.ca.Run)
	if a.cfg.Database.Driver == "postgres" {
		// Revocations made on other nodes reach this node's feeds and OCSP
		// by notification, not at the CRL's next tick (TestMultiNode).
		r.own("policy notifications", func(ctx context.Context) error {
			return postgres.ListenPolicy(ctx, a.cfg.Database.DSN, a.ca.Changed, log)
		})
	}
	r.own("acme", func(ctx context.Context) error {
		<-ctx.Done() // the CA's listener has stopped
		return closeACME()
	})
	return srv, nil
}

// acmeServer opens the internal ACME service. Its state lives beside the
// store: in the PostgreSQL database (tables acme_*) so every CA node
// answers the same clients, or in a bbolt file in the CA directory.
func (a *app) acmeServer() (*ca.ACMEServer, error) {
	o := ca.ACMEServerOptions{Hosts: a.cfg.CA.ACME.Hosts, Driver: "bbolt", DataSource: filepath.Join(a.cfg.CA.Dir, "acme.db")}
	if a.cfg.Database.Driver == "postgres" {
		o.Driver, o.DataSource = "postgresql", a.cfg.Database.DSN
	}
	if u, err := url.Parse(a.cfg.CA.PublicURL); err == nil {
		o.PublicHost = u.Host
	}
	return ca.NewACMEServer(a.ca.Keys(), o)
}

func newLogger(env *cliEnv, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(env.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.stderr, opts))
}
