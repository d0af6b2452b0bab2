package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRootOfflineCLI: the commands of docs/operations.md "Root key
// offline": `ca root export` moves the key out, `ca intermediate new`
// without it says the root is offline and how to bring it back, with
// --root-key it makes a trusted intermediate, `list` shows the roles;
// bad input is refused and changes nothing.
func TestRootOfflineCLI(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	caDir := filepath.Join(dir, "data", "ca")
	mustCLI(t, "ca", "--config", cfg, "init")
	offline := filepath.Join(dir, "usb", "devicegate-root.key")
	if err := os.MkdirAll(filepath.Dir(offline), 0o700); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{
		{"root"},
		{"root", "export"},                        // no --out
		{"root", "import", "--out", offline},      // no such command
		{"intermediate"},                          // no command
		{"intermediate", "frobnicate"},            // unknown
		{"intermediate", "new", "--cert", "x"},    // flag of another command
		{"intermediate", "import", "--cert", "x"}, // no --key
		{"intermediate", "activate"},              // no name
		{"intermediate", "retire", "devices"},     // the active one
	} {
		t.Run("refused "+strings.Join(args, " "), func(t *testing.T) {
			if code, _, errOut := cli(t, append([]string{"ca", "--config", cfg}, args...)...); code == 0 || errOut == "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if _, err := os.Stat(offline); err == nil {
				t.Fatal("a refused command wrote the root key out")
			}
			if _, err := os.Stat(filepath.Join(caDir, "devices.json")); err == nil {
				t.Fatal("a refused command wrote the state file")
			}
		})
	}

	out := mustCLI(t, "ca", "--config", cfg, "root", "export", "--out", offline)
	if !strings.Contains(out, "--root-key "+offline) {
		t.Fatalf("export output does not say how to use the key: %q", out)
	}
	if _, err := os.Stat(filepath.Join(caDir, "root.key")); err == nil {
		t.Fatal("root.key still in the CA directory")
	}
	code, _, errOut := cli(t, "ca", "--config", cfg, "intermediate", "new")
	if code == 0 || !strings.Contains(errOut, "root key is offline") || !strings.Contains(errOut, "--root-key") {
		t.Fatalf("intermediate new without the root: exit %d, %q", code, errOut)
	}
	if strings.Contains(errOut, "PRIVATE KEY") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatal("key material printed")
	}
	out = mustCLI(t, "ca", "--config", cfg, "intermediate", "new", "--root-key", offline)
	if !strings.Contains(out, "devices-2") || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("intermediate new: %q", out)
	}
	var list []intermediateJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "ca", "--config", cfg, "intermediate", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "devices" || list[0].State != "active" || list[1].Name != "devices-2" || list[1].State != "trusted" {
		t.Fatalf("list: %+v", list)
	}
	if bundle := mustCLI(t, "ca", "--config", cfg, "intermediate", "bundle"); strings.Count(bundle, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("bundle has %d certificates, want 2", strings.Count(bundle, "BEGIN CERTIFICATE"))
	}
	mustCLI(t, "ca", "--config", cfg, "intermediate", "activate", "devices-2")
	mustCLI(t, "ca", "--config", cfg, "intermediate", "retire", "devices")
	if out := mustCLI(t, "ca", "--config", cfg, "intermediate", "list"); !strings.Contains(out, "retired") || !strings.Contains(out, "active") {
		t.Fatalf("list: %q", out)
	}
}
