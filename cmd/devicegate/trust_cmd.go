package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/devicegate/devicegate/enroll/client"
	"github.com/devicegate/devicegate/internal/truststore"
)

const (
	trustInstallUsage   = "trust install (--root FILE | --url URL --fingerprint SHA256) [--no-system] [--no-nss] [--home DIR]"
	trustUninstallUsage = "trust uninstall (--fingerprint SHA256 | --root FILE | --all) [--no-system] [--no-nss] [--home DIR]"
)

// runTrust installs or removes the CA's root as a trust anchor of this
// computer, so browsers open the portal without a certificate warning.
func runTrust(ctx context.Context, args []string, env *cliEnv) error {
	return runGroup(ctx, "devicegate trust", trustTable(), args, env)
}

func trustTable() []command {
	return []command{
		{name: "install", about: "trust the CA's root: from --root FILE, or fetched from --url URL and checked against --fingerprint",
			flags: func(fs *flag.FlagSet) commandRun {
				root := fs.String("root", "", "the CA's root certificate `FILE` (PEM file with the root alone)")
				url := fs.String("url", "", "the CA's `URL`, to fetch the root from (needs --fingerprint)")
				fingerprint := fs.String("fingerprint", "", "SHA-256 fingerprint `FP` of the root, as `devicegate demo` and `ca init` print it")
				targets := addTrustTargets(fs)
				return func(ctx context.Context, _ []string, env *cliEnv) error {
					return runTrustInstall(ctx, *root, *url, *fingerprint, targets, env)
				}
			}},
		{name: "uninstall", about: "remove a root devicegate installed (--fingerprint or --root), or all of them (--all)",
			flags: func(fs *flag.FlagSet) commandRun {
				root := fs.String("root", "", "the root certificate `FILE` to remove (PEM file)")
				fingerprint := fs.String("fingerprint", "", "SHA-256 fingerprint `FP` of the root to remove")
				all := fs.Bool("all", false, "remove every root devicegate installed")
				targets := addTrustTargets(fs)
				return func(_ context.Context, _ []string, env *cliEnv) error {
					return runTrustUninstall(*root, *fingerprint, *all, targets, env)
				}
			}},
	}
}

// trustTargets are the flags that choose the stores, shared by both commands.
type trustTargets struct {
	noSystem, noNSS *bool
	home            *string
}

func addTrustTargets(fs *flag.FlagSet) trustTargets {
	return trustTargets{
		noSystem: fs.Bool("no-system", false, "leave the operating system's store alone"),
		noNSS:    fs.Bool("no-nss", false, "leave the browsers' NSS databases alone"),
		home:     fs.String("home", "", "whose browsers' NSS databases, `DIR` (default: $HOME)"),
	}
}

// installer builds the Installer for this computer from the flags.
func (t trustTargets) installer(env *cliEnv, creating bool) (*truststore.Installer, error) {
	in := &truststore.Installer{Log: env.stdout}
	if !*t.noNSS {
		home := *t.home
		if home == "" {
			var err error
			if home, err = os.UserHomeDir(); err != nil {
				return nil, fmt.Errorf("no home directory for the NSS databases (use --home or --no-nss): %w", err)
			}
			if os.Getenv("SUDO_USER") != "" {
				fmt.Fprintf(env.stderr, "note: running under sudo, so the browsers of %s are the ones changed; run without sudo (it asks for the system store itself) to change yours\n", home)
			}
		}
		in.NSSDatabases = truststore.NSSDatabasesIn(home)
		if creating {
			in.CreateNSS = truststore.ChromiumNSS(home)
		}
	}
	if !*t.noSystem {
		sys, err := truststore.DetectSystemStore()
		if err != nil {
			return nil, err
		}
		in.System = sys
	}
	if in.System == nil && len(in.NSSDatabases) == 0 && in.CreateNSS == "" && !creating {
		return nil, errors.New("nothing to change: both --no-system and --no-nss")
	}
	return in, nil
}

func runTrustInstall(ctx context.Context, root, url, fingerprint string, targets trustTargets, env *cliEnv) error {
	var trust client.Trust
	switch {
	case root != "" && url == "":
		trust.RootFile = root
	case root == "" && url != "" && fingerprint != "":
		trust.Fingerprint = fingerprint
	default:
		return fmt.Errorf("give --root FILE, or --url URL with --fingerprint SHA256\nusage: devicegate %s", trustInstallUsage)
	}
	cert, err := client.FetchRoot(ctx, url, trust)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cert.Raw)
	if root != "" && fingerprint != "" {
		want, err := client.ParseFingerprint(fingerprint)
		if err != nil {
			return err
		}
		if hex.EncodeToString(want) != hex.EncodeToString(sum[:]) {
			return fmt.Errorf("%s does not match the fingerprint: refusing to trust it", root)
		}
	}
	if runtime.GOOS != "linux" {
		file, err := filepath.Abs("devicegate-root.pem")
		if err != nil {
			return err
		}
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, truststore.ManualSteps(runtime.GOOS, file, truststore.Name(cert)))
		return nil
	}
	in, err := targets.installer(env, true)
	if err != nil {
		return err
	}
	if err := in.Install(cert); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "trusted %q (SHA-256 %s); restart the browser to pick it up\n", cert.Subject.CommonName, hex.EncodeToString(sum[:]))
	return nil
}

func runTrustUninstall(root, fingerprint string, all bool, targets trustTargets, env *cliEnv) error {
	var name string
	switch {
	case all && root == "" && fingerprint == "":
	case !all && root != "" && fingerprint == "":
		cert, err := client.FetchRoot(context.Background(), "", client.Trust{RootFile: root})
		if err != nil {
			return err
		}
		name = truststore.Name(cert)
	case !all && root == "" && fingerprint != "":
		sum, err := client.ParseFingerprint(fingerprint)
		if err != nil {
			return err
		}
		name = truststore.NameForFingerprint(sum)
	default:
		return fmt.Errorf("give one of --fingerprint, --root or --all\nusage: devicegate %s", trustUninstallUsage)
	}
	if runtime.GOOS != "linux" {
		fmt.Fprintln(env.stdout, "remove the root by hand: see `devicegate trust install` for this system's steps")
		return nil
	}
	in, err := targets.installer(env, false)
	if err != nil {
		return err
	}
	n, err := in.Uninstall(name)
	fmt.Fprintf(env.stdout, "removed %d entr%s\n", n, map[bool]string{true: "y", false: "ies"}[n == 1])
	return err
}
