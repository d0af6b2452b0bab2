package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// helpCase is one way to ask for help and what its usage must show.
type helpCase struct {
	args []string
	want []string // in stdout
}

// helpCases walks every command and subcommand of the binary: the top
// level, each command and each ca command with --help and -h, before and
// after the arguments, and every admin case (adminHelpCases).
func helpCases() map[string]helpCase {
	cmds := commands()
	var top []string
	for _, c := range cmds {
		top = append(top, c.name, c.about)
	}
	cases := map[string]helpCase{
		"--help": {[]string{"--help"}, top}, "-h": {[]string{"-h"}, top}, "help": {[]string{"help"}, top},
		"help ca init": {[]string{"help", "ca", "init"}, []string{caPrefix + " init"}},
	}
	add := func(words []string, args string, want []string) {
		name := strings.Join(words, " ")
		for _, h := range []string{"--help", "-h"} {
			cases[name+" "+h] = helpCase{append(slices.Clone(words), h), want}
		}
		if args != "" { // help after the arguments is help too
			filled := strings.Fields(strings.NewReplacer("[", "", "]", "", "...", "").Replace(args))
			cases[name+" ARGS --help"] = helpCase{append(append(slices.Clone(words), filled...), "--help"), want}
		}
	}
	groups := map[string]struct {
		prefix string
		table  []command
	}{
		"ca":    {caPrefix, caTable(new(string), new(string))},
		"trust": {"devicegate trust", trustTable()},
	}
	for _, c := range cmds {
		g, ok := groups[c.name]
		switch {
		case ok:
			var listing []string
			for _, s := range g.table {
				listing = append(listing, s.name, s.about)
				add([]string{c.name, s.name}, s.args, []string{strings.TrimSpace("usage: " + g.prefix + " " + s.name + " " + s.args), s.about})
			}
			add([]string{c.name}, "", listing)
		case c.group != nil:
			continue // admin: adminHelpCases
		default:
			add([]string{c.name}, c.args, []string{strings.TrimSpace("usage: devicegate " + c.name + " " + c.args), c.about})
		}
	}
	for _, s := range groups["ca"].table { // the group's flags before the command
		add([]string{"ca", "--data", "dg", s.name}, s.args, []string{s.about})
	}
	for name, c := range adminHelpCases() {
		cases[name] = helpCase(c)
	}
	return cases
}

// --help and -h anywhere print that command's usage (with its positional
// arguments) on stdout, exit 0 and change nothing: run in an empty
// directory, it stays empty. `ca init --help` used to create a CA,
// `check-config --help` opened a file named --help, `ca crl --help`
// printed the CRL and subcommands exited 1 with "flag: help requested".
func TestHelpChangesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cases := helpCases()
	if len(cases) < 100 {
		t.Fatalf("only %d help cases: the walk misses commands", len(cases))
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if !strings.HasPrefix(out, "usage: ") {
				t.Errorf("no usage line:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("usage lacks %q:\n%s", w, out)
				}
			}
			if files, _ := os.ReadDir(dir); len(files) > 0 {
				t.Fatalf("--help created %s", files[0].Name())
			}
		})
	}
}

// Without help, a wrong command line exits non-zero with its usage on
// stderr and creates nothing either.
func TestBadCommandLinesChangeNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{{}, {"fly"}, {"ca"}, {"ca", "fly"}, {"ca", "init", "extra"}, {"ca", "--bogus", "init"},
		{"ca", "init", "--bogus"}, {"check-config"}, {"check-config", "--bogus", "x.yaml"}, {"serve", "extra"},
		{"demo", "--bogus"}, {"version", "extra"}, {"trust"}, {"trust", "install", "x"}} {
		code, _, errOut := cli(t, args...)
		if code == 0 || !strings.Contains(errOut, "usage: ") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
		if files, _ := os.ReadDir(dir); len(files) > 0 {
			t.Fatalf("%q created %s", args, files[0].Name())
		}
	}
}

// One source: the listing, the dispatch and each command's usage come from
// the same table, and every name is unique and described.
func TestCommandTable(t *testing.T) {
	for _, table := range [][]command{commands(), caTable(new(string), new(string)), trustTable()} {
		seen := map[string]bool{}
		for _, c := range table {
			if seen[c.name] || c.about == "" || (c.flags == nil) == (c.group == nil) {
				t.Errorf("%q: duplicate, without a description, or not exactly one of flags and group", c.name)
			}
			seen[c.name] = true
			if got, ok := findCommand(table, c.name); !ok || got.name != c.name {
				t.Errorf("%q dispatches to %q", c.name, got.name)
			}
		}
	}
}
