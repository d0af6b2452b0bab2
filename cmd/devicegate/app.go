package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/sqlite"
)

// app is what every subcommand works with: config, store, and the CA when
// this data directory has one.
type app struct {
	cfg     *config.Config
	catalog *config.Catalog
	store   store.Store
	ca      *ca.Authority // nil when the CA is not initialized
	log     *slog.Logger

	externalTLS *tls.Config                     // tls.cert_file or tls.acme, once loaded
	startCerts  func(ctx context.Context) error // ACME: started after the listeners bind
	roleMetrics *roleMetrics                    // metrics(): made on first use
}

type openOptions struct {
	initCA bool // create the CA when missing (demo)
	// requireCA refuses a data directory without a CA before anything is
	// created in it (serve, proxy, ca crl, ca proxy-cert).
	requireCA bool
	log       *slog.Logger
}

// loadConfig reads --config, or builds the defaults for --data DIR.
func loadConfig(configPath, dataDir string) (*config.Config, error) {
	if configPath != "" && dataDir != "" {
		return nil, errors.New("use either --config or --data, not both")
	}
	if configPath != "" {
		return config.Load(configPath)
	}
	if dataDir == "" {
		dataDir = "./devicegate-data"
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return config.Parse(fmt.Appendf(nil, "data_dir: %q\n", abs), wd)
}

func openApp(ctx context.Context, configPath, dataDir string, o openOptions) (*app, error) {
	cfg, err := loadConfig(configPath, dataDir)
	if err != nil {
		return nil, err
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	catalog, err := loadCatalog(cfg)
	if err != nil {
		return nil, err
	}
	if o.requireCA {
		if _, err := ca.LoadKeys(cfg.CA.Dir); errors.Is(err, ca.ErrNotInitialized) {
			return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, errNoCA)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, catalog: catalog, store: st, log: log}
	keys, err := ca.LoadKeys(cfg.CA.Dir)
	if errors.Is(err, ca.ErrNotInitialized) && o.initCA {
		if err = ca.Init(cfg.CA.Dir, ca.InitOptions{Name: "devicegate"}); err == nil {
			log.Info("created a new CA", "dir", cfg.CA.Dir)
			keys, err = ca.LoadKeys(cfg.CA.Dir)
		}
	}
	switch {
	case errors.Is(err, ca.ErrNotInitialized):
		return a, nil
	case err != nil:
		st.Close()
		return nil, err
	}
	a.ca, err = ca.New(ctx, keys, st, caOptions(cfg, log))
	if err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func loadCatalog(cfg *config.Config) (*config.Catalog, error) {
	if cfg.PermissionsFile != "" {
		return config.LoadCatalog(cfg.PermissionsFile)
	}
	return config.DefaultCatalog()
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	key, err := secrets.LoadOrCreateKey(cfg.Database.SealKeyFile)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	opts := store.Options{SealKey: key}
	switch cfg.Database.Driver {
	case "postgres":
		return postgres.Open(ctx, cfg.Database.DSN, opts)
	default:
		return sqlite.Open(ctx, cfg.Database.Path, opts)
	}
}

func caOptions(cfg *config.Config, log *slog.Logger) ca.Options {
	return ca.Options{
		TrustDomain: cfg.CA.TrustDomain,
		Validity:    cfg.CA.Validity.Duration(),
		TicketTTL:   cfg.CA.TicketTTL.Duration(),
		AllowRSA:    cfg.CA.RSAAllowed(),
		CRLFile:     cfg.CA.CRLFile,
		CRLValidity: cfg.CA.CRLValidity.Duration(),
		PublicURL:   cfg.CA.PublicURL,
		Dir:         cfg.CA.Dir, // a running node follows a rotation there
		ReloadEvery: deviceCAReloadEvery,
		Logger:      log,
		Now:         clockNow(),
	}
}

func (a *app) Close() error { return a.store.Close() }
