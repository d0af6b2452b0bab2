package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// command is one command of the devicegate binary (or of `devicegate ca`).
// Its name, arguments, flags and description are written here once: the
// dispatch, the listing and the command's own --help all come from it.
type command struct {
	name  string
	args  string // positional arguments as usage shows them: "FILE...", "[URL...]", ""
	about string // one line
	// flags defines the command's flags on fs and returns the command bound
	// to their values; it runs before anything is opened or created, so
	// --help and bad flags change nothing.
	flags func(fs *flag.FlagSet) commandRun
	// group, for a command with commands of its own (admin, ca), takes the
	// whole argument list and answers its own --help from its own table.
	group func(ctx context.Context, args []string, env *cliEnv) error
	// groupSynopsis is what a group's usage line shows after its name.
	groupSynopsis string
}

// commandRun runs a command with its positional arguments (already
// checked against the command's args).
type commandRun func(ctx context.Context, pos []string, env *cliEnv) error

// cliEnv carries the process's standard streams so commands stay testable.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{name: "demo", about: "run everything on loopback with demo data: CA, portal, mTLS proxy and a demo back-office app", flags: demoFlags},
		{name: "serve", about: "run the CA node from --config: enrollment API, CRL, OCSP, revocation feed and the web portal", flags: serveFlags},
		{name: "proxy", about: "run the mTLS gateway in front of back-office apps from --config", flags: proxyFlags},
		{name: "enroll", about: "enroll this computer with a one-time code (key generated locally)", flags: enrollFlags},
		{name: "renew", about: "renew this computer's device certificate in its last 30 days (new key, same device and slot)", flags: renewFlags},
		{name: "ca", groupSynopsis: "[--config F | --data DIR] <command>", about: "CA operations: " + strings.Join(commandNames(caTable(new(string), new(string))), ", "), group: runCA},
		{name: "admin", groupSynopsis: "[--config F | --data DIR] <command>", about: "owner/operator CLI: stores, sub-accounts, devices, proxies, audit", group: runAdmin},
		{name: "check-config", args: "FILE...", about: "validate config files and report every problem", flags: checkConfigFlags},
		{name: "health", args: "[URL...]", about: "GET each role's URLs and fail unless all answer 2xx (the image's HEALTHCHECK)", flags: healthFlags},
		{name: "trust", groupSynopsis: "<command>", about: "install or remove the CA's root in this computer's system store and browsers (like mkcert -install)", group: runTrust},
		{name: "backoffice", about: "run only the demo back-office app (the upstream of docker-compose.yml)", flags: backofficeFlags},
		{name: "version", about: "print the version", flags: noCommandFlags(runVersion)},
	}
}

// findCommand returns the command called name in cmds.
func findCommand(cmds []command, name string) (command, bool) {
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return cmds[i], true
}

func commandNames(cmds []command) []string {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	return names
}

// noCommandFlags is the flags of a command that has none.
func noCommandFlags(run commandRun) func(*flag.FlagSet) commandRun {
	return func(*flag.FlagSet) commandRun { return run }
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(_ context.Context, _ []string, env *cliEnv) error {
	_, err := fmt.Fprintln(env.stdout, "devicegate", version)
	return err
}

// listCommands prints cmds, one line each, under prefix.
func listCommands(w io.Writer, prefix string, cmds []command) {
	fmt.Fprintf(w, "usage: %s <command> [arguments] [flags]\n\ncommands:\n", prefix)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.about)
	}
	fmt.Fprintf(w, "\n%s <command> --help shows a command's arguments and flags.\n", prefix)
}

// synopsis is the command's arguments then its flags, as usage shows them.
func (c command) synopsis(fs *flag.FlagSet) string {
	if c.group != nil {
		return c.groupSynopsis
	}
	words := strings.Fields(c.args)
	fs.VisitAll(func(f *flag.Flag) {
		w := "--" + f.Name
		if name, _ := flag.UnquoteUsage(f); name != "" {
			w += " " + name
		}
		if !strings.Contains(f.Usage, "(required)") {
			w = "[" + w + "]"
		}
		words = append(words, w)
	})
	return strings.Join(words, " ")
}

// usage is the command's --help: its line, what it does, its flags.
func (c command) usage(w io.Writer, prefix string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace(prefix+" "+c.synopsis(fs)), c.about)
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

// arity is how many positional arguments c takes: at least min, at most
// max (-1: any number).
func (c command) arity() (lo, hi int) {
	for _, w := range strings.Fields(c.args) {
		optional := strings.HasPrefix(w, "[")
		if strings.HasSuffix(strings.Trim(w, "[]"), "...") {
			hi = -1
		} else if hi >= 0 {
			hi++
		}
		if !optional {
			lo++
		}
	}
	return lo, hi
}

// runLeaf parses a command's flags (before, between or after its
// arguments), answers --help and -h with its usage on stdout, checks its
// arguments and only then runs it. prefix is how it is called
// ("devicegate check-config", "devicegate ca init").
func (c command) runLeaf(ctx context.Context, prefix string, args []string, env *cliEnv) error {
	fs := newFlagSet(prefix, io.Discard) // its errors are returned, with the usage line
	run := c.flags(fs)
	fs.Usage = func() {}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(env.stdout, prefix, fs)
		return nil
	}
	line := "usage: " + strings.TrimSpace(prefix+" "+c.synopsis(fs))
	if err != nil {
		return fmt.Errorf("%w\n%s", err, line)
	}
	lo, hi := c.arity()
	if len(pos) < lo || (hi >= 0 && len(pos) > hi) {
		return errors.New(line)
	}
	for _, p := range pos {
		if strings.HasPrefix(p, "-") && p != "-" {
			return fmt.Errorf("unknown flag %q\n%s", p, line)
		}
	}
	return run(ctx, pos, env)
}

// runGroup dispatches args[0] among a group's commands (prefix is how the
// group is called); --help or -h instead of a command lists them.
func runGroup(ctx context.Context, prefix string, cmds []command, args []string, env *cliEnv) error {
	var listing strings.Builder
	listCommands(&listing, prefix, cmds)
	if len(args) == 0 {
		return errors.New(strings.TrimSuffix(listing.String(), "\n"))
	}
	if isHelp(args[0]) || args[0] == "help" {
		_, err := io.WriteString(env.stdout, listing.String())
		return err
	}
	c, ok := findCommand(cmds, args[0])
	if !ok {
		return fmt.Errorf("unknown command %q\n%s", args[0], strings.TrimSuffix(listing.String(), "\n"))
	}
	return c.runLeaf(ctx, prefix+" "+c.name, args[1:], env)
}

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) > 1 && args[0] == "help" {
		args = append(args[1:], "--help") // devicegate help ca init
	}
	if len(args) == 0 || isHelp(args[0]) || args[0] == "help" {
		if len(args) == 0 {
			listCommands(stderr, "devicegate", cmds)
			return 2
		}
		listCommands(stdout, "devicegate", cmds)
		return 0
	}
	cmd, ok := findCommand(cmds, args[0])
	if !ok {
		fmt.Fprintf(stderr, "devicegate: unknown command %q\n", args[0])
		listCommands(stderr, "devicegate", cmds)
		return 2
	}
	env := &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr}
	var err error
	if cmd.group != nil {
		err = cmd.group(ctx, args[1:], env)
	} else {
		err = cmd.runLeaf(ctx, "devicegate "+cmd.name, args[1:], env)
	}
	if err != nil {
		fmt.Fprintf(stderr, "devicegate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
