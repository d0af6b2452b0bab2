package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAdminIntermediateListCounts: `admin intermediate list` shows each
// device intermediate with the active devices it issued, in every store:
// revoked devices are not counted, a device renewed or enrolled after the
// rotation counts for the new intermediate, and the old one's count is
// what an operator checks before `ca intermediate retire`.
func TestAdminIntermediateListCounts(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "other")
	for _, full := range []string{"shop:alice", "shop:ann", "other:bee"} {
		mustCLI(t, "admin", "--config", cfg, "sub", "add", full, "--role", "finance")
		mustCLI(t, "admin", "--config", cfg, "sub", "phone", full)
		mustCLI(t, "admin", "--config", cfg, "sub", "protect", full, "--devices", "3")
	}
	type want struct {
		state   string
		devices int
	}
	check := func(t *testing.T, wants map[string]want) {
		t.Helper()
		var listing struct {
			Intermediates []struct {
				Name          string `json:"name"`
				State         string `json:"state"`
				ActiveDevices *int   `json:"active_devices"`
			} `json:"intermediates"`
			Unattributed int `json:"unattributed_devices"`
		}
		if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "intermediate", "list", "--json")), &listing); err != nil {
			t.Fatal(err)
		}
		if len(listing.Intermediates) != len(wants) || listing.Unattributed != 0 {
			t.Fatalf("listing: %+v, want %v", listing, wants)
		}
		text := mustCLI(t, "admin", "--config", cfg, "intermediate", "list")
		for _, got := range listing.Intermediates {
			w, ok := wants[got.Name]
			if !ok || got.State != w.state || got.ActiveDevices == nil || *got.ActiveDevices != w.devices {
				t.Fatalf("%s: state %s, devices %v; want %+v", got.Name, got.State, got.ActiveDevices, w)
			}
			line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(got.Name) + ` +` + w.state + ` .* ` + regexp.QuoteMeta(activeDevices(&w.devices)) + `$`)
			if !line.MatchString(text) {
				t.Fatalf("text listing lacks %q with %q:\n%s", got.Name, activeDevices(&w.devices), text)
			}
		}
	}

	// Before any rotation: one intermediate; a revoked device is not counted.
	a1, a2 := enrollIn(t, cfg, "shop:alice"), enrollIn(t, cfg, "shop:alice")
	enrollIn(t, cfg, "shop:ann")
	b1 := enrollIn(t, cfg, "other:bee")
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", a2.Device.ID)

	steps := []struct {
		name  string
		do    func(t *testing.T)
		wants map[string]want
	}{
		{"one intermediate, revoked device not counted", func(*testing.T) {},
			map[string]want{"devices": {"active", 3}}},
		{"new intermediate trusted, nothing on it yet", func(t *testing.T) {
			mustCLI(t, "ca", "--config", cfg, "intermediate", "new")
		}, map[string]want{"devices": {"active", 3}, "devices-2": {"trusted", 0}}},
		{"activated: an enrollment in the other store counts for the new one", func(t *testing.T) {
			mustCLI(t, "ca", "--config", cfg, "intermediate", "activate", "devices-2")
			enrollIn(t, cfg, "other:bee")
		}, map[string]want{"devices": {"trusted", 3}, "devices-2": {"active", 1}}},
		{"the old one's devices leave it when revoked", func(t *testing.T) {
			mustCLI(t, "admin", "--config", cfg, "device", "revoke", a1.Device.ID)
			mustCLI(t, "admin", "--config", cfg, "device", "revoke", b1.Device.ID)
		}, map[string]want{"devices": {"trusted", 1}, "devices-2": {"active", 1}}},
		{"retiring it while a device is left on it is refused", func(t *testing.T) {
			code, _, errOut := cli(t, "ca", "--config", cfg, "intermediate", "retire", "devices")
			if code == 0 || !strings.Contains(errOut, "1 active device") || !strings.Contains(errOut, "--force") {
				t.Fatalf("exit %d, stderr %q; want a refusal naming 1 active device and --force", code, errOut)
			}
		}, map[string]want{"devices": {"trusted", 1}, "devices-2": {"active", 1}}},
		{"retired too early with --force: still counted", func(t *testing.T) {
			mustCLI(t, "ca", "--config", cfg, "intermediate", "retire", "devices", "--force")
		}, map[string]want{"devices": {"retired", 1}, "devices-2": {"active", 1}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			check(t, s.wants)
		})
		if t.Failed() {
			break
		}
	}
}

// TestRetireFailsClosedWithoutCount: `ca intermediate retire` refuses when
// it cannot count the devices still on the intermediate (here the database
// cannot be opened), changes nothing, and --force retires all the same.
func TestRetireFailsClosedWithoutCount(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "ca", "--config", cfg, "intermediate", "new")
	mustCLI(t, "ca", "--config", cfg, "intermediate", "activate", "devices-2")
	// A directory where the database file should be: it cannot be opened.
	noDB := filepath.Join(filepath.Dir(cfg), "not-a-database")
	if err := os.Mkdir(noDB, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("database:\n  path: " + noDB + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, _, errOut := cli(t, "ca", "--config", cfg, "intermediate", "retire", "devices")
	if code == 0 || !strings.Contains(errOut, "cannot count the devices still on devices") {
		t.Fatalf("exit %d, stderr %q; want a refusal", code, errOut)
	}
	if out := mustCLI(t, "ca", "--config", cfg, "intermediate", "list"); strings.Contains(out, "retired") {
		t.Fatalf("a refused retirement changed the state:\n%s", out)
	}
	mustCLI(t, "ca", "--config", cfg, "intermediate", "retire", "devices", "--force")
	if out := mustCLI(t, "ca", "--config", cfg, "intermediate", "list"); !strings.Contains(out, "retired") {
		t.Fatalf("--force did not retire it:\n%s", out)
	}
}
