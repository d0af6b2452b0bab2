package main

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
)

// adminHelpCases are every way to ask the admin CLI for help: admin
// itself, each group of commands, each command (-h and --help, before and
// after its arguments, with a config file that does not exist).
func adminHelpCases() map[string]struct {
	args []string
	want []string // in stdout
} {
	type c = struct {
		args []string
		want []string
	}
	cmds := adminTable()
	all := func() []string {
		var w []string
		for _, c := range cmds {
			w = append(w, c.line(), c.about)
		}
		return w
	}
	cases := map[string]c{
		"admin --help":     {[]string{"admin", "--help"}, all()},
		"admin -h":         {[]string{"admin", "-h"}, all()},
		"admin --data --h": {[]string{"admin", "--data", "dg", "-h"}, all()},
	}
	for _, cmd := range cmds {
		words := strings.Fields(cmd.name)
		if g := group(cmds, words[0]); len(g) > 0 {
			var want []string
			for _, c := range g {
				want = append(want, c.line())
			}
			cases["admin "+words[0]+" --help"] = c{[]string{"admin", words[0], "--help"}, want}
		}
		want := []string{cmd.line(), cmd.about}
		args := strings.Fields(cmd.synopsis)[:cmd.positional()]
		for _, h := range []string{"-h", "--help"} {
			cases["admin "+cmd.name+" "+h] = c{append(append([]string{"admin"}, words...), h), want}
		}
		cases["admin --config missing.yaml "+cmd.name+" ARGS --help"] = c{
			append(append(append([]string{"admin", "--config", "missing.yaml"}, words...), args...), "--help"), want}
	}
	return cases
}

// --help anywhere in the admin tree prints that usage on stdout, exits 0
// and touches nothing: run in an empty directory, it stays empty (no data
// directory, no database, no key). A refused command creates nothing
// either, and asking no help still exits non-zero.
func TestAdminHelpChangesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for name, tc := range adminHelpCases() {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
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
	for _, args := range [][]string{{"admin"}, {"admin", "sub"}, {"admin", "sub", "fly", "x:y"}, {"admin", "sub", "add"},
		{"admin", "sub", "add", "x:y", "extra"}, {"admin", "sub", "phone", "x:y", "--bogus"}, {"admin", "--bogus"}} {
		if code, _, errOut := cli(t, args...); code == 0 || errOut == "" {
			t.Errorf("%s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
		if files, _ := os.ReadDir(dir); len(files) > 0 {
			t.Fatalf("%s created %s", strings.Join(args, " "), files[0].Name())
		}
	}
}

// The table is the one source: names are unique, each is dispatched to
// itself, and the flags a synopsis shows are exactly the flags the command
// defines (so usage and parsing cannot drift either).
func TestAdminTable(t *testing.T) {
	cmds := adminTable()
	seen := map[string]bool{}
	for _, c := range cmds {
		if seen[c.name] || c.about == "" {
			t.Errorf("%q: duplicate or without a description", c.name)
		}
		seen[c.name] = true
		args := append(strings.Fields(c.name), strings.Fields(c.synopsis)[:c.positional()]...)
		if got, _, ok := findAdmin(cmds, args); !ok || got.name != c.name {
			t.Errorf("%q dispatches to %q", strings.Join(args, " "), got.name)
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs)
		var defined, shown []string
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.HasPrefix(f.Usage, deprecatedFlag) {
				defined = append(defined, f.Name)
			}
		})
		for _, w := range strings.Fields(c.synopsis) {
			if name, ok := strings.CutPrefix(strings.Trim(w, "[]"), "--"); ok {
				shown = append(shown, name)
			}
		}
		slices.Sort(shown)
		if !slices.Equal(defined, shown) {
			t.Errorf("%s: flags %v, synopsis shows %v", c.name, defined, shown)
		}
	}
}
