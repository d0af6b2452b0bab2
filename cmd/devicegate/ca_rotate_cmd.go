package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/devicegate/devicegate/ca"
)

// The root key's and the device intermediates' commands (`ca root export`,
// `ca intermediate ...`); docs/operations.md walks through them.

func caRootCommand(configPath, dataDir *string) command {
	return command{name: "root", args: "export",
		about: "write the root key to --out (a new file, 0600: the offline medium) and remove it from the CA directory; the CA keeps working with its intermediates",
		flags: func(fs *flag.FlagSet) commandRun {
			out := fs.String("out", "", "where to write the root key, a new `FILE` (required)")
			return func(_ context.Context, pos []string, env *cliEnv) error {
				if pos[0] != "export" {
					return fmt.Errorf("unknown ca root command %q (the only one is export)", pos[0])
				}
				if *out == "" {
					return errors.New("--out FILE is required")
				}
				dir, err := caDir(*configPath, *dataDir)
				if err != nil {
					return err
				}
				if err := ca.ExportRootKey(dir, *out); err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "root key written to %s and removed from %s: the root is offline.\n", *out, dir)
				fmt.Fprintf(env.stdout, "To make a new device intermediate later: devicegate ca intermediate new --root-key %s\n", *out)
				return nil
			}
		}}
}

// intermediateFlags are the flags each `ca intermediate` command takes:
// a flag given to another command is an error, not ignored.
var intermediateFlags = map[string][]string{"list": {"json"}, "new": {"root-key"}, "import": {"cert", "key"}, "retire": {"force"}}

func caIntermediateCommand(configPath, dataDir *string) command {
	return command{name: "intermediate", args: "COMMAND [NAME]",
		about: "device intermediates: list [--json]; new [--root-key FILE] (signed by the root, trusted, not issuing yet); " +
			"import --cert FILE --key FILE (made by this root elsewhere); activate NAME (issues from now on, the previous one stays trusted); " +
			"retire NAME [--force] (its certificates are refused; refused itself while active devices hold one, unless --force); bundle (PEM of every trusted one: an edge proxy's devices.pem)",
		flags: func(fs *flag.FlagSet) commandRun {
			asJSON := fs.Bool("json", false, "list: as JSON")
			rootKey := fs.String("root-key", "", "new: the root key `FILE` (the offline copy); without it the CA directory's root.key")
			certFile := fs.String("cert", "", "import: the intermediate's certificate, PEM `FILE`")
			keyFile := fs.String("key", "", "import: the intermediate's key, PEM PKCS#8 `FILE`")
			force := fs.Bool("force", false, "retire: even while active devices still hold a certificate it issued (they are refused from then on)")
			return func(ctx context.Context, pos []string, env *cliEnv) error {
				var stray error
				fs.Visit(func(f *flag.Flag) {
					for _, a := range intermediateFlags[pos[0]] {
						if a == f.Name {
							return
						}
					}
					stray = fmt.Errorf("--%s does not apply to `ca intermediate %s`", f.Name, pos[0])
				})
				if stray != nil {
					return stray
				}
				cfg, err := loadConfig(*configPath, *dataDir)
				if err != nil {
					return err
				}
				if pos[0] == "retire" && len(pos) == 2 && !*force {
					if err := checkNothingLeftOn(ctx, cfg, pos[1]); err != nil {
						return err
					}
				}
				return runCAIntermediate(cfg.CA.Dir, pos, intermediateOptions{json: *asJSON, rootKey: *rootKey, certFile: *certFile, keyFile: *keyFile}, env)
			}
		}}
}

type intermediateOptions struct {
	json                       bool
	rootKey, certFile, keyFile string
}

func caDir(configPath, dataDir string) (string, error) {
	cfg, err := loadConfig(configPath, dataDir)
	if err != nil {
		return "", err
	}
	return cfg.CA.Dir, nil
}

// intermediateJSON is one device intermediate in `ca intermediate list --json`.
type intermediateJSON struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Subject     string    `json:"subject"`
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
}

func intermediateView(d ca.DeviceCA) intermediateJSON {
	return intermediateJSON{Name: d.Name, State: d.State, Subject: d.Cert.Subject.CommonName,
		Fingerprint: ca.Fingerprint(d.Cert), NotBefore: d.Cert.NotBefore.UTC(), NotAfter: d.Cert.NotAfter.UTC()}
}

func runCAIntermediate(dir string, pos []string, o intermediateOptions, env *cliEnv) error {
	withName := map[string]bool{"activate": true, "retire": true}
	if withName[pos[0]] != (len(pos) == 2) {
		if withName[pos[0]] {
			return fmt.Errorf("usage: devicegate ca intermediate %s NAME", pos[0])
		}
		return fmt.Errorf("`ca intermediate %s` takes no NAME", pos[0])
	}
	switch pos[0] {
	case "list":
		return listIntermediates(dir, o.json, env)
	case "new":
		name, err := ca.NewIntermediate(dir, o.rootKey, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "device intermediate %s created, trusted, not issuing yet.\n", name)
		fmt.Fprintf(env.stdout, "Next: let every CA node and proxy learn it (docs/operations.md, \"Rotating the device intermediate\"), then: devicegate ca intermediate activate %s\n", name)
		return nil
	case "import":
		if o.certFile == "" || o.keyFile == "" {
			return errors.New("--cert FILE and --key FILE are required")
		}
		certPEM, err := os.ReadFile(o.certFile)
		if err != nil {
			return err
		}
		keyPEM, err := os.ReadFile(o.keyFile)
		if err != nil {
			return err
		}
		name, err := ca.ImportIntermediate(dir, certPEM, keyPEM, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "device intermediate %s imported, trusted, not issuing yet.\n", name)
		return nil
	case "activate":
		if err := ca.ActivateIntermediate(dir, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s issues new device and proxy certificates once the CA nodes reload it (within 10 s; log: device intermediates reloaded); the previous intermediate stays trusted until `ca intermediate retire`.\n", pos[1])
		return nil
	case "retire":
		if err := ca.RetireIntermediate(dir, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s is retired: certificates it issued are refused.\n", pos[1])
		return nil
	case "bundle":
		keys, err := ca.LoadKeys(dir)
		if err != nil {
			return err
		}
		_, err = env.stdout.Write(keys.TrustedPEM)
		return err
	}
	return fmt.Errorf("unknown ca intermediate command %q (list, new, import, activate, retire, bundle)", pos[0])
}

func listIntermediates(dir string, asJSON bool, env *cliEnv) error {
	list, err := ca.ListIntermediates(dir)
	if err != nil {
		return err
	}
	views := make([]intermediateJSON, 0, len(list))
	for _, d := range list {
		views = append(views, intermediateView(d))
	}
	if asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSUBJECT\tNOT AFTER")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.State, v.Subject, v.NotAfter.Format(time.DateOnly))
	}
	return tw.Flush()
}
