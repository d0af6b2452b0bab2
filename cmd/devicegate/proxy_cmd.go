package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/proxy"
)

// runProxy runs the mTLS gateway from a config file. By default its policy
// comes from the store of that config (polled, or notified by PostgreSQL)
// and its TLS certificate from the internal server CA of the same data
// directory; with proxy.feed it needs neither: policy and audit go through
// the CA over mTLS.
func proxyFlags(fs *flag.FlagSet) commandRun {
	configPath := configFlag(fs)
	return func(ctx context.Context, _ []string, env *cliEnv) error { return runProxy(ctx, *configPath, env) }
}

func runProxy(ctx context.Context, configPath string, env *cliEnv) error {
	if configPath == "" {
		return errors.New("--config is required")
	}
	cfg, err := loadConfig(configPath, "")
	if err != nil {
		return err
	}
	if len(cfg.Proxy.Upstreams) == 0 {
		return errors.New("proxy.upstreams is empty: nothing to protect")
	}
	log := newLogger(env, cfg.Log.Level, cfg.Log.Format)
	tuneGC()
	var r role
	var gw *gatewayServers
	if cfg.Proxy.Feed.CAURL != "" {
		gw, err = startFeedGateway(ctx, &r, cfg, log)
	} else {
		var a *app
		if a, err = openApp(ctx, configPath, "", openOptions{requireCA: true, log: log}); err != nil {
			return err
		}
		defer a.Close() // after r.run: the auditor has written its queue
		if a.ca == nil {
			return errNoCA
		}
		gw, err = a.startGateway(ctx, &r, cfg.Proxy.Upstreams, log)
	}
	if err != nil {
		return err
	}
	if gw.startCerts != nil {
		if err := gw.startCerts(ctx); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	fmt.Fprintf(env.stdout, "proxy_url: %s\nmetrics_url: %s/metrics\nproxy_name: %s\n", gw.proxy.URL(), gw.admin.URL(), gw.name)
	r.serve(gw.proxy.serve, gw.admin.serve)
	return r.run(ctx)
}

// feedPollEvery backs up the feed's watch (which pushes changes at once).
const feedPollEvery = time.Second

// startFeedGateway runs a gateway that holds no database credentials and no
// CA keys: the credentials directory from `devicegate ca proxy-cert` (its
// proxy certificate, the CA root, the device CA) and the operator's own
// server certificate are all it needs. It renews its proxy certificate in
// that directory itself (the directory must be writable).
func startFeedGateway(ctx context.Context, r *role, cfg *config.Config, log *slog.Logger) (*gatewayServers, error) {
	dir := cfg.Proxy.Feed.CredentialsDir
	cert, err := proxy.LoadFeedCertificate(dir)
	if err != nil {
		return nil, fmt.Errorf("proxy.feed.credentials_dir: %w", err)
	}
	roots, err := poolFromFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		return nil, err
	}
	loadDevices := fileDeviceCAs(filepath.Join(dir, "devices.pem"))
	trusted, _, err := loadDevices()
	if err != nil {
		return nil, err
	}
	catalog, err := loadCatalog(cfg)
	if err != nil {
		return nil, err
	}
	serverTLS, startCerts, err := externalServerTLS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	feed := proxy.NewFeedClient(cfg.Proxy.Feed.CAURL, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}, log)
	// The credentials directory is renewed (and its CA files replaced) in
	// place: expiry is read from it at every scrape.
	rm := newRoleMetrics()
	rm.certs.add(certKindRoot, certsFromFile(filepath.Join(dir, "root.pem")))
	rm.certs.add(certKindProxy, func() []*x509.Certificate { return []*x509.Certificate{feed.Certificate()} })
	gw, err := startGateway(ctx, r, gatewayParts{
		cfg: cfg, catalog: catalog, source: feed, sink: feed, trust: proxy.NewDeviceCAs(trusted, nil), reloadCAs: loadDevices, tls: serverTLS,
		metrics:   rm,
		pollEvery: max(cfg.Proxy.SyncInterval.Duration(), feedPollEvery),
		name:      feed.Name(), // the CA records the certificate's name
		reporter:  func(string) proxy.Reporter { return feed },
		watch: func(r *role, p *proxy.Policy) {
			r.own("policy feed", func(ctx context.Context) error { return feed.Watch(ctx, p) })
			// Its proxy certificate lives 7 days.
			r.own("certificate renewal", func(ctx context.Context) error { return feed.KeepRenewed(ctx, dir, time.Now) })
		},
	}, cfg.Proxy.Upstreams, log)
	if err != nil {
		return nil, err
	}
	gw.startCerts = startCerts
	return gw, nil
}

// poolFromFile reads PEM certificates into a pool; an empty file is an error.
func poolFromFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// proxyGCPercent: the proxy's live heap is small (the policy snapshot is
// an allow-list of current devices) while every full TLS handshake
// allocates tens of KiB, so the default GOGC=100 collects very often. 200
// cut CPU per handshake by 3-4 % (2-3 % more handshakes/s) in side-by-side
// runs; peak RSS under the benchmark load stays far below the 100 MB goal.
const proxyGCPercent = 200

// tuneGC applies proxyGCPercent unless the operator set GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(proxyGCPercent)
	}
}
