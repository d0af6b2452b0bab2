package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store/postgres"
)

// demoPermissions maps the demo back-office app's pages to permission
// points of the catalog.
var demoPermissions = []config.PathPermission{
	{Path: "/orders/sold", Point: "orders.sold"},
	{Path: "/orders/export.csv", Point: "orders.export"},
	{Path: "/shipping", Point: "shipping"},
	{Path: "/members", Point: "members"},
	{Path: "/products", Point: "products"},
}

// gatewayServers are the proxy's TLS listener and its admin (metrics) listener.
type gatewayServers struct {
	proxy *server
	admin *server
}

// startGateway runs the policy sync and the audit writer until ctx ends and
// returns the proxy's listeners, fronting upstreams.
func (a *app) startGateway(ctx context.Context, upstreams []config.Upstream, log *slog.Logger) (*gatewayServers, error) {
	policy := proxy.NewPolicy(a.store, a.catalog, log)
	if err := policy.PersistTo(a.cfg.Proxy.SnapshotFile); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if err := policy.Sync(ctx); err != nil {
		// Start anyway: decisions come from the saved snapshot until it is
		// older than max_staleness, then high-risk paths fail closed.
		log.Error("proxy: first policy sync failed", "err", err)
	}
	go policy.Run(ctx, a.cfg.Proxy.SyncInterval.Duration())
	a.ca.OnRevoke(policy.Kick) // revocations by this process's CA apply at once
	if a.cfg.Database.Driver == "postgres" {
		// Changes by other nodes arrive by notification, not by the poll.
		go postgres.ListenPolicy(ctx, a.cfg.Database.DSN, policy.Kick, log)
	}
	auditor := proxy.NewAuditor(a.store, 4096, log)
	go auditor.Run(ctx)
	reg := prometheus.NewRegistry()
	metrics := proxy.NewMetrics(reg, policy, auditor)
	gw, err := proxy.NewGateway(proxy.Options{
		TrustDomain:  a.cfg.CA.TrustDomain,
		Upstreams:    upstreams,
		Catalog:      a.catalog,
		Policy:       policy,
		MaxStaleness: a.cfg.Proxy.MaxStaleness.Duration(),
		EnrollURL:    a.cfg.Proxy.EnrollURL,
		Audit:        auditor,
		Metrics:      metrics,
		Log:          log,
	})
	if err != nil {
		return nil, err
	}
	tc, err := a.serverTLS(ctx)
	if err != nil {
		return nil, err
	}
	proxy.ConfigureTLS(tc, a.ca.Keys().DevicePool(), metrics)
	srv, err := listen("proxy", a.cfg.Proxy.Listen, gw, tc, log)
	if err != nil {
		return nil, err
	}
	srv.srv.ConnState = metrics.ConnState
	admin, err := listenAdmin(a.cfg.Proxy.AdminListen, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), a.cfg.Proxy.Pprof, log)
	if err != nil {
		srv.ln.Close()
		return nil, err
	}
	return &gatewayServers{proxy: srv, admin: admin}, nil
}

// demoUpstream is the demo back-office app as the gateway's upstream, with
// "whoami" session binding.
func demoUpstream(boURL string) config.Upstream {
	return config.Upstream{
		Name:        "backoffice",
		URL:         boURL,
		Hosts:       localHosts,
		Timeout:     config.Duration(30e9),
		Binding:     config.Binding{Mode: "whoami", WhoamiURL: boURL + "/whoami", SessionCookie: backoffice.SessionCookie, UserField: "user"},
		Permissions: demoPermissions,
	}
}

// listenAdmin serves metrics at /metrics and, when asked, the Go profiler.
func listenAdmin(addr string, metrics http.Handler, withPprof bool, log *slog.Logger) (*server, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return listen("admin", addr, mux, nil, log)
}
