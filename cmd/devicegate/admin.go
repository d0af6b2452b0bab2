package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// adminCommand is one `devicegate admin` command. Its name, arguments,
// flags and description are written here once: the dispatch, `admin
// --help` and the command's own --help all come from adminTable, so they
// cannot drift apart.
type adminCommand struct {
	name string // "sub add"
	// synopsis is the positional arguments, then the flags, as usage shows
	// them ("STORE:NAME --position P [--grant P,...]"); the words before the
	// first flag are the positional arguments the command takes.
	synopsis string
	about    string // one line
	// flags defines the command's flags on fs and returns the command
	// bound to their values; it runs before anything is opened.
	flags func(fs *flag.FlagSet) adminRun
}

// adminRun runs a command on the opened data directory with its positional
// arguments (as many as the synopsis names).
type adminRun func(ctx context.Context, a *app, pos []string, env *cliEnv) error

// noFlags is the flags of a command that has none.
func noFlags(run adminRun) func(*flag.FlagSet) adminRun {
	return func(*flag.FlagSet) adminRun { return run }
}

func jsonFlag(fs *flag.FlagSet) *bool { return fs.Bool("json", false, "JSON output") }

func reasonFlag(fs *flag.FlagSet, def string) *string {
	return fs.String("reason", def, "RFC 5280 reason `R`: "+strings.Join(reasonList(), ", ")+" (or its number)")
}

// positionFlag is a sub-account's position (岗位), the word of the portal
// and the docs; --role, its old name, still works.
func positionFlag(fs *flag.FlagSet) *string {
	p := fs.String("position", "", "the sub-account's position `P`: a position (roles:) of the permissions catalog (every catalog has "+strings.Join(config.RequiredRoles, ", ")+")")
	fs.StringVar(p, "role", "", deprecatedFlag+"the old name of --position")
	return p
}

// deprecatedFlag starts the usage of a flag kept only under an old name;
// synopses leave such flags out.
const deprecatedFlag = "deprecated: "

func passwordFileFlag(fs *flag.FlagSet) *string {
	return fs.String("password-file", "", "`F`: the file whose first line is the password (default: generate and print one)")
}

func adminTable() []adminCommand {
	status := func(s store.SubStatus) func(*flag.FlagSet) adminRun {
		return noFlags(func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
			return a.adminSubStatus(ctx, pos[0], s, waitOptions{}, env)
		})
	}
	cmds := []adminCommand{
		{"store add", "NAME [--display NAME]", "create a store", func(fs *flag.FlagSet) adminRun {
			display := fs.String("display", "", "display `NAME`")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminStoreAdd(ctx, pos[0], *display, env)
			}
		}},
		{"store list", "[--json]", "list the stores", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, a *app, _ []string, env *cliEnv) error {
				return a.adminStoreList(ctx, *asJSON, env)
			}
		}},
		{"owner set", "STORE [--password-file F] [--reset-phone]", "set the store owner's portal password (and with --reset-phone, bind a new phone at the next login)", func(fs *flag.FlagSet) adminRun {
			pwFile := passwordFileFlag(fs)
			resetPhone := fs.Bool("reset-phone", false, "forget the owner's TOTP phone binding; the next portal login binds a phone again")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminOwnerSet(ctx, pos[0], *pwFile, *resetPhone, env)
			}
		}},
		{"sub add", "STORE:NAME --position P [--grant P,...] [--password-file F] [--from DATE --until DATE]", "create a sub-account with a position and extra permission points (with --until: a temporary one)", func(fs *flag.FlagSet) adminRun {
			role := positionFlag(fs)
			grants := fs.String("grant", "", "supplementary permission points `P,...`, comma-separated")
			pwFile := passwordFileFlag(fs)
			from, until := windowFlags(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubAdd(ctx, pos[0], *role, *grants, *pwFile, *from, *until, env)
			}
		}},
		{"sub list", "STORE [--search S] [--json]", "list a store's sub-accounts", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			search := fs.String("search", "", "only sub-accounts whose name contains `S`")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubList(ctx, pos[0], *search, *asJSON, env)
			}
		}},
		{"sub show", "STORE:NAME [--json]", "show one sub-account", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubShow(ctx, pos[0], *asJSON, env)
			}
		}},
		{"sub phone", "STORE:NAME", "turn on phone verification: print the otpauth:// URI of a new TOTP secret, once", noFlags(
			func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubPhone(ctx, pos[0], env)
			})},
		{"sub protect", "STORE:NAME --devices N | --off", "certificate protection: at most N computers with a certificate, or off", func(fs *flag.FlagSet) adminRun {
			n := fs.Int("devices", 0, "`N`: how many computers may hold a certificate (1..5)")
			off := fs.Bool("off", false, "turn certificate protection off")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubProtect(ctx, pos[0], *n, *off, env)
			}
		}},
		{"sub ticket", "STORE:NAME", "print a one-time enrollment code for `devicegate enroll`", noFlags(
			func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubTicket(ctx, pos[0], env)
			})},
		{"sub devices", "STORE:NAME [--json]", "list a sub-account's devices", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubDevices(ctx, pos[0], *asJSON, env)
			}
		}},
		{"sub depart", "STORE:NAME [--wait [--timeout D]]", "mark a sub-account departed and revoke its devices", func(fs *flag.FlagSet) adminRun {
			wait := waitFlags(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubStatus(ctx, pos[0], store.StatusDeparted, wait, env)
			}
		}},
		{"sub restore", "STORE:NAME", "make a departed or frozen sub-account active again", status(store.StatusActive)},
		{"sub freeze", "STORE:NAME", "freeze a sub-account and revoke its devices", status(store.StatusFrozen)},
		{"sub revoke-all", "STORE:NAME [--reason R]", "revoke every device certificate of a sub-account", func(fs *flag.FlagSet) adminRun {
			reason := reasonFlag(fs, "cessationOfOperation")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminSubRevokeAll(ctx, pos[0], *reason, env)
			}
		}},
		{"device revoke", "SERIAL|DEVICE-ID [--reason R] [--wait [--timeout D]]", "revoke one device certificate", func(fs *flag.FlagSet) adminRun {
			reason := reasonFlag(fs, "unspecified")
			wait := waitFlags(fs)
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminDeviceRevoke(ctx, pos[0], *reason, wait, env)
			}
		}},
		{"device revoke-from-crl", "FILE", "after a restore: revoke again what a saved CRL (PEM) revokes and the database does not", noFlags(
			func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminRevokeFromCRL(ctx, pos[0], env)
			})},
		{"device allow-renew", "STORE SERIAL|DEVICE-ID [--for D]", "let one device of STORE renew once before its certificate nears its end", func(fs *flag.FlagSet) adminRun {
			forText := fs.String("for", "7d", "how long the permission lasts, `D`: days (7d) or a Go duration (36h), at most 30d")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminDeviceAllowRenew(ctx, pos[0], pos[1], *forText, env)
			}
		}},
		{"proxy list", "[--json]", "list the proxy certificates", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, a *app, _ []string, env *cliEnv) error {
				return a.adminProxyList(ctx, *asJSON, env)
			}
		}},
		{"proxy revoke", "NAME|SERIAL [--reason R]", "revoke one proxy certificate (SERIAL) or all of a proxy (NAME)", func(fs *flag.FlagSet) adminRun {
			reason := reasonFlag(fs, "cessationOfOperation")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminProxyRevoke(ctx, pos[0], *reason, env)
			}
		}},
		{"intermediate list", "[--json]", "the device intermediates with the active devices each issued, in every store (retire an old one once it has none)", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			return func(ctx context.Context, a *app, _ []string, env *cliEnv) error {
				return a.adminIntermediateList(ctx, *asJSON, env)
			}
		}},
		{"audit", "STORE [--target T] [--json]", "a store's audit log", func(fs *flag.FlagSet) adminRun {
			asJSON := jsonFlag(fs)
			target := fs.String("target", "", "only events whose target is `T`")
			return func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminAudit(ctx, pos[0], *target, *asJSON, env)
			}
		}},
		{"audit verify", "STORE", "verify a store's hash-chained audit log and report the gaps proxies recorded", noFlags(
			func(ctx context.Context, a *app, pos []string, env *cliEnv) error {
				return a.adminAuditVerify(ctx, pos[0], env)
			})},
	}
	cmds = append(cmds, lifecycleCommands()...)
	return append(cmds, ownerAndVerifyCommands()...)
}

// adminPrefix is what every admin command line starts with.
const adminPrefix = "devicegate admin [--config F | --data DIR]"

// line is the command's usage line: name, then synopsis.
func (c adminCommand) line() string { return strings.TrimSpace(c.name + " " + c.synopsis) }

// positional is how many arguments the command takes: the synopsis's
// words before its first flag.
func (c adminCommand) positional() int {
	n := 0
	for _, w := range strings.Fields(c.synopsis) {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") {
			break
		}
		n++
	}
	return n
}

// adminUsage lists cmds (all of them for `admin --help`, one group's for
// `admin sub --help`).
func adminUsage(w io.Writer, cmds []adminCommand) {
	fmt.Fprintf(w, "usage: %s <command>\n\ncommands:\n", adminPrefix)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s\n        %s\n", c.line(), c.about)
	}
}

// usage is the command's --help: its line, what it does, its flags.
func (c adminCommand) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s\n\n%s\n", adminPrefix, c.line(), c.about)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
}

// findAdmin picks the command words name: three words ("sub verify
// approve"), else two ("sub add"), else one ("audit STORE"). It returns the
// command and its remaining arguments.
func findAdmin(cmds []adminCommand, words []string) (adminCommand, []string, bool) {
	for n := min(3, len(words)); n >= 1; n-- {
		name := strings.Join(words[:n], " ")
		if i := slices.IndexFunc(cmds, func(c adminCommand) bool { return c.name == name }); i >= 0 {
			return cmds[i], words[n:], true
		}
	}
	return adminCommand{}, nil, false
}

// group is the commands whose first word is word ("sub"); nil when word
// is a command itself ("audit STORE"), whose --help is its own.
func group(cmds []adminCommand, word string) []adminCommand {
	var out []adminCommand
	for _, c := range cmds {
		if c.name == word {
			return nil
		}
		if strings.Fields(c.name)[0] == word {
			out = append(out, c)
		}
	}
	return out
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// runAdmin parses everything first and opens the data directory only for
// a complete command: --help (of admin, a group or a command) and bad
// arguments change nothing on disk.
func runAdmin(ctx context.Context, args []string, env *cliEnv) error {
	cmds := adminTable()
	fs := newFlagSet("admin", env.stderr)
	configPath := fs.String("config", "", "config file")
	dataDir := fs.String("data", "", "data directory (instead of --config)")
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		adminUsage(env.stdout, cmds)
		return nil
	}
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 2 && isHelp(rest[1]) {
		if g := group(cmds, rest[0]); len(g) > 0 {
			adminUsage(env.stdout, g)
			return nil
		}
	}
	var listing strings.Builder
	adminUsage(&listing, cmds)
	if len(rest) < 2 {
		return errors.New(strings.TrimSuffix(listing.String(), "\n"))
	}
	c, cargs, ok := findAdmin(cmds, rest)
	if !ok {
		return fmt.Errorf("unknown admin command %q\n%s", rest[0]+" "+rest[1], strings.TrimSuffix(listing.String(), "\n"))
	}
	cfs := newFlagSet(c.name, env.stderr)
	run := c.flags(cfs)
	cfs.Usage = func() {}
	pos, err := parseInterleaved(cfs, cargs)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(env.stdout, cfs)
		return nil
	}
	if err != nil {
		c.usage(env.stderr, cfs)
		return err
	}
	if err := wantArgs(pos, c.positional(), c.line()); err != nil {
		return err
	}
	a, err := openApp(ctx, *configPath, *dataDir, openOptions{})
	if err != nil {
		return err
	}
	defer a.Close()
	return run(ctx, a, pos, env)
}

// cliActor records the operator CLI in the audit log.
func cliActor() store.Actor {
	name := "admin-cli"
	if u := os.Getenv("USER"); u != "" {
		name += ":" + u
	}
	return store.Actor{Kind: "cli", Name: name}
}

// resolveSub finds "store:name" and returns tenant and sub-account.
func (a *app) resolveSub(ctx context.Context, full string) (store.Tenant, store.SubAccount, error) {
	tenantName, subName, err := identity.SplitFullName(full)
	if err != nil {
		return store.Tenant{}, store.SubAccount{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	t, err := a.store.GetTenantByName(ctx, tenantName)
	if err != nil {
		return store.Tenant{}, store.SubAccount{}, fmt.Errorf("store %q: %w", tenantName, err)
	}
	s, err := a.store.GetSubAccountByName(ctx, t.ID, subName)
	if err != nil {
		return t, store.SubAccount{}, fmt.Errorf("sub-account %q: %w", full, err)
	}
	return t, s, nil
}

func printJSON(env *cliEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var errNoCA = errors.New("the CA is not initialized in this data directory (run `devicegate ca init` or start `devicegate demo` once)")
