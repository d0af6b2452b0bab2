package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/devicegate/devicegate/ca"
)

// runServe runs the CA node (enrollment API, CRL, OCSP, revocation feed)
// from a config file.
func runServe(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("serve", env.stderr)
	configPath := fs.String("config", "", "config file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("--config is required")
	}
	log := newLogger(env, "info", "json")
	a, err := openApp(ctx, *configPath, "", openOptions{log: log})
	if err != nil {
		return err
	}
	defer a.Close()
	if a.ca == nil {
		return errNoCA
	}
	tc, err := a.serverTLS(ctx)
	if err != nil {
		return err
	}
	api := ca.NewServer(a.ca)
	api.ConfigureTLS(tc)
	srv, err := listenTLS("ca", a.cfg.CA.Listen, api, tc, log)
	if err != nil {
		return err
	}
	go a.ca.Run(ctx)
	log.Info("CA listening", "url", srv.URL())
	fmt.Fprintf(env.stdout, "ca_url: %s\n", srv.URL())
	return srv.serve(ctx)
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
