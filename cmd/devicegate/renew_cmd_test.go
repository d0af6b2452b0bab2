package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenewCLI: `devicegate renew --dir` on an enrolled computer. Far from
// its end the certificate is not renewed and the files stay as they were;
// once the owner allowed one early renewal, the device gets a new key and
// certificate in the same slot, the new files pass the proxy and the old
// certificate is refused there.
func TestRenewCLI(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	info, stop := startDemo(t, cfg)
	defer stop()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("correct-horse-battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "demo-store:dave", "--role", "cs-supervisor", "--password-file", pw)
	mustCLI(t, "admin", "--config", cfg, "sub", "phone", "demo-store:dave")
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "demo-store:dave", "--devices", "1")
	code := strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", "demo-store:dave"))
	pc := filepath.Join(dir, "pc1")
	mustCLI(t, "enroll", "--url", info.CAURL, "--code", code, "--out", pc, "--root", info.RootCAFile, "--p12-password-file", pw)
	old := filepath.Join(dir, "pc1-old")
	if err := os.CopyFS(old, os.DirFS(pc)); err != nil {
		t.Fatal(err)
	}
	devices := func() (installed int, id, serial string) {
		var l struct {
			Installed int `json:"installed"`
			Devices   []struct{ ID, Serial, Status string }
		}
		if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "sub", "devices", "demo-store:dave", "--json")), &l); err != nil {
			t.Fatal(err)
		}
		for _, d := range l.Devices {
			if d.Status == "active" {
				id, serial = d.ID, d.Serial
			}
		}
		return l.Installed, id, serial
	}
	_, devID, oldSerial := devices()

	// Just enrolled: too early; nothing changes on disk.
	rc, _, errOut := cli(t, "renew", "--dir", pc, "--url", info.CAURL, "--p12-password-file", pw)
	if rc == 0 || !strings.Contains(errOut, "30") {
		t.Fatalf("early renewal: exit %d %q, want the too-early refusal", rc, errOut)
	}
	for _, f := range []string{"key.pem", "cert.pem", "chain.pem", "device.p12"} {
		a, _ := os.ReadFile(filepath.Join(pc, f))
		b, _ := os.ReadFile(filepath.Join(old, f))
		if !bytes.Equal(a, b) {
			t.Fatalf("a refused renewal changed %s", f)
		}
	}

	mustCLI(t, "admin", "--config", cfg, "device", "allow-renew", "demo-store", devID)
	out := mustCLI(t, "renew", "--dir", pc, "--url", info.CAURL, "--p12-password-file", pw)
	if !strings.Contains(out, "renewed device "+devID) || !strings.Contains(out, oldSerial) {
		t.Fatalf("renew printed %q", out)
	}
	installed, sameID, newSerial := devices()
	if installed != 1 || sameID != devID || newSerial == oldSerial {
		t.Fatalf("after renewal: installed %d, device %s serial %s; want 1, %s, a new serial", installed, sameID, newSerial, devID)
	}
	oldKey, _ := os.ReadFile(filepath.Join(old, "key.pem"))
	newKey, _ := os.ReadFile(filepath.Join(pc, "key.pem"))
	if bytes.Equal(oldKey, newKey) {
		t.Fatal("the renewal kept the old key")
	}

	dave := ""
	for _, u := range info.BackofficeUsers {
		if u.Name == "demo-store:dave" {
			dave = u.Password
		}
	}
	if got := proxyStatus(t, info, pc, "demo-store:dave", dave); got != http.StatusOK {
		t.Fatalf("renewed certificate through the proxy: %d", got)
	}
	if got := proxyStatus(t, info, old, "demo-store:dave", dave); got == http.StatusOK {
		t.Fatal("the superseded certificate still passes the proxy")
	}
	// Once renewed, the permission is used up.
	if rc, _, _ := cli(t, "renew", "--dir", pc, "--url", info.CAURL, "--p12-password-file", pw); rc == 0 {
		t.Fatal("a second early renewal went through")
	}
}
