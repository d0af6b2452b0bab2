package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/propagation"
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
	proxy      *server
	admin      *server
	startCerts func(context.Context) error // ACME: call once the listeners are bound (may be nil)
	name       string                      // what the proxy reports its applied policy seq as
}

// gatewayParts are what a gateway runs on: where its policy comes from and
// where its decisions go, the device CA that signs client certificates,
// and its server TLS.
type gatewayParts struct {
	cfg       *config.Config
	catalog   *config.Catalog
	source    proxy.PolicySource
	sink      proxy.AuditSink
	trust     *proxy.DeviceCAs // the device intermediates devices are verified with
	reloadCAs deviceCAsLoader  // reads the device intermediates again (nil: never)
	tls       *tls.Config
	pollEvery time.Duration
	// name and reporter: how the proxy reports the policy seq it has
	// applied (revoke --wait), to the store or the CA's feed; name ""
	// is proxy.name or its default (proxyName).
	name     string
	reporter func(name string) proxy.Reporter
	// watch adds to the role whatever pushes changes (kicks) to the
	// policy: the in-process CA, PostgreSQL notifications, the CA's feed.
	watch func(*role, *proxy.Policy)

	metrics *roleMetrics // the process's registry (nil: one of its own)
	// storeMetrics, if set, adds what only a proxy on the store can measure.
	storeMetrics func(*role, prometheus.Registerer)
}

// How often the propagation tracker checks without a notification.
const (
	trackerPollSQLite   = 250 * time.Millisecond
	trackerPollPostgres = time.Second
)

// startGateway returns the proxy's listeners, fronting upstreams, with r
// running the policy sync and the audit writer of the app's own store.
func (a *app) startGateway(ctx context.Context, r *role, upstreams []config.Upstream, log *slog.Logger) (*gatewayServers, error) {
	tc, err := a.serverTLS(ctx)
	if err != nil {
		return nil, err
	}
	gw, err := startGateway(ctx, r, gatewayParts{
		cfg: a.cfg, catalog: a.catalog, source: a.store, sink: a.store, trust: proxy.NewDeviceCAs(deviceCAsOf(a.ca.Keys())), reloadCAs: caDirDeviceCAs(a.cfg.CA.Dir), tls: tc,
		metrics:   a.metrics(),
		pollEvery: a.cfg.Proxy.SyncInterval.Duration(),
		reporter:  func(name string) proxy.Reporter { return proxy.StoreReporter{Store: a.store, Name: name} },
		watch: func(r *role, policy *proxy.Policy) {
			a.ca.OnRevoke(policy.Kick) // revocations by this process's CA apply at once
			if a.cfg.Database.Driver == "postgres" {
				// Changes by other nodes arrive by notification, not by the poll.
				r.own("policy notifications", func(ctx context.Context) error {
					return postgres.ListenPolicy(ctx, a.cfg.Database.DSN, policy.Kick, log)
				})
			}
		},
		storeMetrics: func(r *role, reg prometheus.Registerer) {
			// devicegate_revocation_propagation_seconds, from the store's reports.
			tracker := propagation.NewTracker(a.store, reg)
			poll := trackerPollSQLite
			if a.cfg.Database.Driver == "postgres" {
				poll = trackerPollPostgres
				r.own("proxy report notifications", func(ctx context.Context) error {
					return postgres.ListenReports(ctx, a.cfg.Database.DSN, tracker.Wake, log)
				})
			}
			r.own("revocation propagation", func(ctx context.Context) error { return tracker.Run(ctx, poll) })
		},
	}, upstreams, log)
	if err != nil {
		return nil, err
	}
	gw.startCerts = a.startCertificates
	return gw, nil
}

func startGateway(ctx context.Context, r *role, p gatewayParts, upstreams []config.Upstream, log *slog.Logger) (*gatewayServers, error) {
	policy := proxy.NewPolicy(p.source, p.catalog, log)
	if err := policy.PersistTo(p.cfg.Proxy.SnapshotFile); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if err := policy.Sync(ctx); err != nil {
		// Start anyway: decisions come from the saved snapshot until it is
		// older than max_staleness, then high-risk paths fail closed.
		log.Error("proxy: first policy sync failed", "err", err)
	}
	r.own("policy sync", func(ctx context.Context) error { return policy.Run(ctx, p.pollEvery) })
	if p.reloadCAs != nil {
		every := deviceCAReloadEvery
		r.own("device intermediates", func(ctx context.Context) error {
			return reloadDeviceCAs(ctx, p.trust, p.reloadCAs, every, log)
		})
	}
	p.watch(r, policy)
	auditor := proxy.NewAuditor(p.sink, 4096, log)
	r.own("audit", auditor.Run)
	rm := p.metrics
	if rm == nil {
		rm = newRoleMetrics()
	}
	metrics := proxy.NewMetrics(rm.reg, policy, auditor)
	maxStaleness := p.cfg.Proxy.MaxStaleness.Duration()
	rm.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicegate_proxy_policy_max_staleness_seconds",
		Help: "proxy.max_staleness: past this policy staleness, high-risk paths fail closed."},
		func() float64 { return maxStaleness.Seconds() }))
	rm.certs.add(certKindIntermediate, p.trust.Trusted) // as reloaded during a rotation
	rm.certs.add(certKindServer, servedCertificate(p.tls, tlsServerName(p.cfg.TLS.Hosts)))
	if p.storeMetrics != nil {
		p.storeMetrics(r, rm.reg)
	}
	gw, err := proxy.NewGateway(proxy.Options{
		TrustDomain:  p.cfg.CA.TrustDomain,
		Upstreams:    upstreams,
		Catalog:      p.catalog,
		Policy:       policy,
		MaxStaleness: maxStaleness,
		EnrollURL:    p.cfg.Proxy.EnrollURL,
		Audit:        auditor,
		Metrics:      metrics,
		Log:          log,
		DeviceCAs:    p.trust,
		Now:          clockNow(),
	})
	if err != nil {
		return nil, err
	}
	proxy.ConfigureDeviceTLS(p.tls, p.trust, metrics)
	srv, err := listen("proxy", p.cfg.Proxy.Listen, gw, p.tls, log)
	if err != nil {
		return nil, err
	}
	srv.srv.ConnState = metrics.ConnState
	name := p.name
	if name == "" {
		if name, err = proxyName(p.cfg.Proxy, srv.ln.Addr()); err != nil {
			srv.ln.Close()
			return nil, err
		}
	}
	policy.ReportTo(p.reporter(name)) // Run (a component, started later) reports
	proxy.RegisterAppliedSeq(rm.reg, policy, name)
	srv.fast = proxy.NewServer(gw, srv.srv)
	admin, err := rm.listenAdmin(p.cfg.Proxy.AdminListen, p.cfg.Proxy.Pprof, log)
	if err != nil {
		srv.ln.Close()
		return nil, err
	}
	return &gatewayServers{proxy: srv, admin: admin, name: name}, nil
}

// proxyName is the name a proxy reading the store reports under:
// proxy.name, or <hostname>-<port of the bound listener> (lower case,
// other characters than a-z, 0-9, '-' and '_' as '-'), stable across
// restarts unless the listener's port is chosen by the system (:0).
func proxyName(c config.Proxy, bound net.Addr) (string, error) {
	if c.Name != "" {
		return c.Name, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("proxy.name is not set and the host name is unknown: %w", err)
	}
	_, port, _ := net.SplitHostPort(bound.String())
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(strings.TrimLeft(host, "-_")+"-"+port))
	if err := identity.ValidateProxyName(name); err != nil {
		return "", fmt.Errorf("proxy.name is not set and %w; set proxy.name", err)
	}
	return name, nil
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
