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
	a, log, err := openFromConfigFlag(ctx, "proxy", args, env)
	if err != nil {
		return err
	}
	defer a.Close()
	if len(a.cfg.Proxy.Upstreams) == 0 {
		return errors.New("proxy.upstreams is empty: nothing to protect")
	}
	gw, err := a.startGateway(ctx, a.cfg.Proxy.Upstreams, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "proxy_url: %s\nmetrics_url: %s/metrics\n", gw.proxy.URL(), gw.admin.URL())
	return serveAll(ctx, gw.proxy.serve, gw.admin.serve)
}
