package main

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/testpki"
)

// TestTrustCommandRefusesBadInput: every wrong use of `devicegate trust`
// fails with a message saying what to give, and writes nothing into the
// home whose browsers it would change. (The installs themselves are tested
// in internal/truststore and, with Chromium, in e2e's TestTrustInstallChromium.)
func TestTrustCommandRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.New(t)
	leaf, _ := pki.Leaf(t, testpki.LeafOptions{CommonName: "a device"})
	write := func(name string, certs ...[]byte) string {
		var data []byte
		for _, c := range certs {
			data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := write("root.pem", pki.Root.Raw)
	leafFile := write("leaf.pem", leaf.Raw)
	interFile := write("intermediate.pem", pki.Intermediate.Raw)
	bundle := write("bundle.pem", pki.Root.Raw, pki.Intermediate.Raw)
	home := t.TempDir()
	local := []string{"--no-system", "--home", home}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"trust"}, "usage: devicegate trust <command>"},
		{[]string{"trust", "add"}, `unknown command "add"`},
		{[]string{"trust", "install"}, "give --root FILE, or --url URL with --fingerprint"},
		{[]string{"trust", "install", "--url", "https://ca.example"}, "give --root FILE, or --url URL with --fingerprint"},
		{[]string{"trust", "install", "--root", root, "--url", "https://ca.example"}, "give --root FILE, or --url URL"},
		{[]string{"trust", "install", "--url", "http://ca.example", "--fingerprint", strings.Repeat("ab", 32)}, "must be https"},
		{[]string{"trust", "install", "--root", root, "--fingerprint", "xyz"}, "64 hex digits"},
		{[]string{"trust", "install", "--root", root, "--fingerprint", strings.Repeat("ab", 32)}, "does not match the fingerprint"},
		{[]string{"trust", "install", "--root", leafFile}, "not a CA certificate"},
		{[]string{"trust", "install", "--root", interFile}, "not self-signed"},
		{[]string{"trust", "install", "--root", bundle}, "give a file with the root alone"},
		{[]string{"trust", "install", "--root", filepath.Join(dir, "missing.pem")}, "no such file"},
		{[]string{"trust", "install", "--root", root, "extra"}, "usage: devicegate trust install"},
		{[]string{"trust", "uninstall"}, "give one of --fingerprint, --root or --all"},
		{[]string{"trust", "uninstall", "--all", "--fingerprint", strings.Repeat("ab", 32)}, "give one of"},
		{[]string{"trust", "uninstall", "--fingerprint", "00"}, "64 hex digits"},
	}
	for _, c := range cases {
		args := c.args
		if len(args) > 2 {
			args = append(append([]string{}, args...), local...)
		}
		code, _, stderr := cli(t, args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("devicegate %s: exit %d, stderr %q; want a failure saying %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Fatalf("refused commands wrote into the home: %v", entries)
	}
	for _, help := range [][]string{{"trust", "--help"}, {"trust", "install", "--help"}, {"trust", "uninstall", "-h"}} {
		if code, _, _ := cli(t, help...); code != 0 {
			t.Errorf("devicegate %s: exit %d, want 0", strings.Join(help, " "), code)
		}
	}
}
