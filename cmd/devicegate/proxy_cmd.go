package main

import (
	"context"
	"errors"
	"fmt"
)

// runProxy runs the mTLS gateway from a config file: its policy comes from
// the store of that config (polled), its TLS certificate from the internal
// server CA of the same data directory.
func runProxy(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("proxy", env.stderr)
	configPath := fs.String("config", "", "config file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("--config is required")
	}
	cfg, err := loadConfig(*configPath, "")
	if err != nil {
		return err
	}
	log := newLogger(env, cfg.Log.Level, cfg.Log.Format)
	a, err := openApp(ctx, *configPath, "", openOptions{log: log})
	if err != nil {
		return err
	}
	defer a.Close()
	if a.ca == nil {
		return errNoCA
	}
	if len(cfg.Proxy.Upstreams) == 0 {
		return errors.New("proxy.upstreams is empty: nothing to protect")
	}
	gw, err := a.startGateway(ctx, cfg.Proxy.Upstreams, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "proxy_url: %s\nmetrics_url: %s/metrics\n", gw.proxy.URL(), gw.admin.url)
	return serveAll(ctx, gw.proxy.serve, gw.admin.serve)
}
