package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/config"
)

// Every refusal says what to do: the flag that is missing and the values
// it takes, the store a duplicate name is in. The old name of --position
// (--role) still works.
func TestMessagesSayWhatToDo(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	if out := mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:alice", "--position", "finance"); !strings.Contains(out, "position finance") {
		t.Fatalf("sub add said %q", out)
	}
	if out := mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:bob", "--role", "operations"); !strings.Contains(out, "position operations") {
		t.Fatalf("sub add --role said %q", out)
	}
	if out := mustCLI(t, "admin", "--config", cfg, "sub", "list", "shop"); !strings.Contains(out, "POSITION") {
		t.Fatalf("sub list: %q", out)
	}
	admin := func(args ...string) []string { return append([]string{"admin", "--config", cfg}, args...) }
	catalog, err := config.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	positions := "(one of: " + strings.Join(catalog.RoleKeys(), ", ") + ")"
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"position missing", admin("sub", "add", "shop:carol"), []string{"--position is required " + positions}},
		{"unknown position", admin("sub", "add", "shop:carol", "--position", "boss"), []string{`unknown position "boss" ` + positions}},
		{"duplicate name", admin("sub", "add", "shop:alice", "--position", "finance"), []string{`store "shop" already has a sub-account "alice"`}},
		{"unknown reason", admin("device", "revoke", "deadbeef", "--reason", "stolen"),
			[]string{`unknown revocation reason "stolen" (--reason one of: unspecified, keyCompromise`, "or its number"}},
		{"unknown reason of revoke-all", admin("sub", "revoke-all", "shop:alice", "--reason", "stolen"), []string{"--reason one of: "}},
		{"devices missing", admin("sub", "protect", "shop:alice"), []string{"--devices N (1..5) is required, or --off"}},
		{"devices and off", admin("sub", "protect", "shop:alice", "--devices", "2", "--off"), []string{"--devices N or --off, not both"}},
		{"devices out of range", admin("sub", "protect", "shop:alice", "--devices", "6"), []string{"--devices must be between 1 and 5"}},
		{"enroll flags missing", []string{"enroll"}, []string{"--url, --code and --out are required", "devicegate enroll --help"}},
		{"serve without config", []string{"serve"}, []string{"--config is required"}},
		{"unknown command", []string{"ca", "--config", cfg, "fly"}, []string{`unknown command "fly"`, "init", "proxy-cert", "crl"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := cli(t, c.args...)
			if code == 0 {
				t.Fatalf("exit 0")
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q\nlacks %q", errOut, w)
				}
			}
			if strings.Contains(errOut, "config.") || strings.Contains(errOut, "store.") {
				t.Errorf("a Go name in %q", errOut)
			}
		})
	}
}

// serve, proxy and the CA commands that need a CA refuse a data directory
// without one before they create anything: the directory stays as it was
// (no database, no seal key, no half-made data dir). ca init then serves.
func TestUninitialisedDataDirUnchanged(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	before := listTree(t, dir)
	proxyCfg := filepath.Join(dir, "proxy.yaml")
	if err := os.WriteFile(proxyCfg, []byte("data_dir: data\nproxy:\n  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n  upstreams:\n"+
		"    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], binding: {mode: whoami, whoami_url: \"http://127.0.0.1:1/whoami\", session_cookie: s}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before = append(before, "proxy.yaml")
	for _, args := range [][]string{{"serve", "--config", cfg}, {"proxy", "--config", proxyCfg}, {"ca", "--config", cfg, "crl"},
		{"ca", "--config", cfg, "proxy-cert", "--name", "p", "--stores", "all", "--out", filepath.Join(dir, "out")}} {
		code, _, errOut := cli(t, args...)
		if code == 0 || !strings.Contains(errOut, "the CA is not initialized") || !strings.Contains(errOut, "devicegate ca init") {
			t.Errorf("%s: exit %d, stderr %q", args[0], code, errOut)
		}
		if after := listTree(t, dir); !slices.Equal(after, before) {
			t.Fatalf("%s changed the directory: %v -> %v", args[0], before, after)
		}
	}
	mustCLI(t, "ca", "--config", cfg, "init")
	if out := mustCLI(t, "ca", "--config", cfg, "crl"); !strings.Contains(out, "BEGIN X509 CRL") {
		t.Fatalf("ca crl after init: %q", out)
	}
}

func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// The demo banner says which password is for what and ends with the next
// step: the portal's URL and the owner's login, or the README walkthrough.
func TestDemoBannerEndsWithNextStep(t *testing.T) {
	var out strings.Builder
	info := demoInfo{PortalURL: "https://localhost:8444/", Store: "demo-store", OwnerPassword: "pw-owner",
		BackofficeUsers: []demoUser{{Name: "demo-store:alice", Password: "pw-a"}, {Name: "demo-store:dave", Password: "pw-d"}}}
	printDemoInfo(&cliEnv{stdout: &out}, info, "/x/demo.json")
	text := out.String()
	for _, w := range []string{"demo-store:alice, password pw-a (portal and back-office app)",
		"demo-store:dave, password pw-d (back-office app only", "its portal password is the one you set"} {
		if !strings.Contains(text, w) {
			t.Errorf("banner lacks %q:\n%s", w, text)
		}
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if last := strings.Join(lines[len(lines)-2:], " "); !strings.Contains(last, "Next: open the portal at https://localhost:8444/ and log in as the owner") ||
		!strings.Contains(last, "README's CLI walkthrough") {
		t.Fatalf("banner does not end with the next step:\n%s", text)
	}
}
