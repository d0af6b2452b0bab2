package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
)

// caTable is the `devicegate ca` commands; configPath and dataDir are the
// group's --config and --data, parsed before the command.
func caTable(configPath, dataDir *string) []command {
	return []command{
		{name: "init", about: "create the root and intermediate CAs (keys 0600) in the data directory", flags: noCommandFlags(
			func(_ context.Context, _ []string, env *cliEnv) error {
				return runCAInit(*configPath, *dataDir, env)
			})},
		{name: "proxy-cert", about: `issue a "proxy" client certificate (7 days, renewed by the edge proxy) for the feeds of the named stores into DIR (proxy.feed.credentials_dir)`,
			flags: func(fs *flag.FlagSet) commandRun {
				name := fs.String("name", "", "proxy node `NAME` (required)")
				stores := fs.String("stores", "", "the stores the proxy serves, comma-separated store names `S,...`, or \"all\" (required)")
				out := fs.String("out", "", "output directory `DIR` (required)")
				return func(ctx context.Context, _ []string, env *cliEnv) error {
					return runProxyCert(ctx, *configPath, *dataDir, *name, *stores, *out, env)
				}
			}},
		{name: "crl", about: "print the current device CRLs (one per trusted device intermediate, the active one first) and the root's CRL (PEM: nginx and HAProxy want a CRL for every CA of the chain)",
			flags: noCommandFlags(func(ctx context.Context, _ []string, env *cliEnv) error {
				return runCACRL(ctx, *configPath, *dataDir, env)
			})},
		caRootCommand(configPath, dataDir),
		caIntermediateCommand(configPath, dataDir),
	}
}

// caPrefix is what every ca command line starts with.
const caPrefix = "devicegate ca [--config F | --data DIR]"

// runCA parses the group's flags, then the command's: --help anywhere
// prints usage and creates nothing (ca init --help used to create a CA).
func runCA(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("ca", io.Discard)
	configPath := fs.String("config", "", "config file")
	dataDir := fs.String("data", "", "data directory (instead of --config)")
	cmds := caTable(configPath, dataDir)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		listCommands(env.stdout, caPrefix, cmds)
		return nil
	}
	if err != nil {
		var listing strings.Builder
		listCommands(&listing, caPrefix, cmds)
		return fmt.Errorf("%w\n%s", err, strings.TrimSuffix(listing.String(), "\n"))
	}
	return runGroup(ctx, caPrefix, cmds, fs.Args(), env)
}

func runCAInit(configPath, dataDir string, env *cliEnv) error {
	cfg, err := loadConfig(configPath, dataDir)
	if err != nil {
		return err
	}
	if err := ca.Init(cfg.CA.Dir, ca.InitOptions{Name: "devicegate"}); err != nil {
		return err
	}
	keys, err := ca.LoadKeys(cfg.CA.Dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "CA created in %s\nroot fingerprint (SHA-256): %s\n", cfg.CA.Dir, ca.Fingerprint(keys.Root))
	fmt.Fprintf(env.stdout, "The root key %s is not needed online: move it to offline storage.\n", filepath.Join(cfg.CA.Dir, ca.RootKeyFile))
	return nil
}

func runCACRL(ctx context.Context, configPath, dataDir string, env *cliEnv) error {
	a, err := openApp(ctx, configPath, dataDir, openOptions{requireCA: true})
	if err != nil {
		return err
	}
	defer a.Close()
	if a.ca == nil {
		return errNoCA
	}
	_, p := a.ca.CRL()
	_, err = env.stdout.Write(p)
	return err
}

// runProxyCert writes key.pem (0600), cert.pem (leaf + intermediate) and
// root.pem for a proxy node.
func runProxyCert(ctx context.Context, configPath, dataDir, name, stores, out string, env *cliEnv) error {
	if name == "" || out == "" || stores == "" {
		return errors.New(`--name, --stores (store names, or "all") and --out are required`)
	}
	a, err := openApp(ctx, configPath, dataDir, openOptions{requireCA: true})
	if err != nil {
		return err
	}
	defer a.Close()
	if a.ca == nil {
		return errNoCA
	}
	scope, err := a.proxyScope(ctx, stores)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	chain, err := a.ca.IssueProxyCert(ctx, name, scope, csr)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	var certPEM []byte
	for _, c := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{"cert.pem", certPEM, 0o644},
		{"root.pem", a.ca.Keys().RootPEM, 0o644},
		{"devices.pem", a.ca.Keys().TrustedPEM, 0o644}, // verifies device certificates at the proxy (every trusted device intermediate)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(out, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "proxy certificate for %q (stores: %s) written to %s (valid until %s)\n",
		name, stores, out, chain[0].NotAfter.Format(time.RFC3339))
	return nil
}

// proxyScope turns --stores ("all", or store names) into a scope of
// tenant ids; an unknown store name is an error.
func (a *app) proxyScope(ctx context.Context, list string) (store.ProxyScope, error) {
	if list == "all" {
		return store.ProxyScope{All: true}, nil
	}
	var scope store.ProxyScope
	for _, name := range strings.Split(list, ",") {
		t, err := a.store.GetTenantByName(ctx, strings.TrimSpace(name))
		if err != nil {
			return store.ProxyScope{}, fmt.Errorf("--stores: store %q: %w", name, err)
		}
		scope.Stores = append(scope.Stores, t.ID)
	}
	return scope, nil
}
