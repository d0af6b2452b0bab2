package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// command is one subcommand of the devicegate binary.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env *cliEnv) error
}

// cliEnv carries the process's standard streams so commands stay testable.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"version":      {"print the version", runVersion},
		"demo":         {"run CA, enrollment API and demo data in one process on loopback", runDemo},
		"serve":        {"run the CA node (enrollment API, CRL, OCSP, revocation feed) from --config", runServe},
		"ca":           {"CA operations: init, proxy-cert, crl", runCA},
		"admin":        {"owner/operator CLI: stores, sub-accounts, devices, audit", runAdmin},
		"enroll":       {"enroll this computer with a one-time code (key generated locally)", runEnroll},
		"proxy":        {"run the mTLS gateway in front of back-office apps from --config", runProxy},
		"check-config": {"validate config files and report every problem", runCheckConfig},
		"health":       {"GET each role's URLs and fail unless all answer 2xx (the image's HEALTHCHECK)", runHealth},
		"trust":        {"install or remove the CA's root in this computer's system store and browsers (like mkcert -install)", runTrust},
		"backoffice":   {"run only the demo back-office app (the upstream of docker-compose.yml)", runBackoffice},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(_ context.Context, _ []string, env *cliEnv) error {
	_, err := fmt.Fprintln(env.stdout, "devicegate", version)
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: devicegate <command> [flags]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, cmds[n].summary)
	}
}

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "devicegate: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr}); err != nil {
		fmt.Fprintf(stderr, "devicegate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
