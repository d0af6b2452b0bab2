package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestTrustInstallChromium: `devicegate trust install` with the CA's URL
// and the fingerprint the demo printed makes the real Chromium open the
// portal without a certificate error; a wrong fingerprint installs
// nothing; `trust uninstall` brings the error back. The system store is
// left alone (--no-system): internal/truststore tests it on temporary
// directories with the real update-ca-certificates.
func TestTrustInstallChromium(t *testing.T) {
	for _, tool := range []string{chromiumPath, "/usr/bin/certutil"} {
		need(t, tool)
	}
	d := startDemo(t)
	var info struct {
		CAURL           string `json:"ca_url"`
		RootFingerprint string `json:"root_fingerprint"`
	}
	data, err := os.ReadFile(filepath.Join(d.dir, "data", "demo.json"))
	if err != nil || json.Unmarshal(data, &info) != nil || info.CAURL == "" || info.RootFingerprint == "" {
		t.Fatalf("demo.json: %v %s", err, data)
	}
	home := t.TempDir()
	trust := func(args ...string) (string, error) {
		cmd := exec.Command(d.bin, append([]string{"trust"}, append(args, "--no-system", "--home", home)...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	portal := strings.TrimSuffix(d.info.PortalURL, "/") + "/owner/login"
	opens := func() error {
		ctx := startChromium(t, home)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return chromedp.Do(ctx, chromedp.Navigate(portal))
	}

	// Not trusted yet: Chromium refuses the portal's certificate.
	if err := opens(); err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
		t.Fatalf("before install: %v, want a certificate error", err)
	}

	// The attack: a CA answering with another root than the one printed.
	wrong := strings.Repeat("ab", 32)
	if out, err := trust("install", "--url", info.CAURL, "--fingerprint", wrong); err == nil || !strings.Contains(out, "does not match") {
		t.Fatalf("install with a wrong fingerprint: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, ".pki")); !os.IsNotExist(err) {
		t.Fatalf("a refused install created %s/.pki (%v)", home, err)
	}

	if out, err := trust("install", "--url", info.CAURL, "--fingerprint", info.RootFingerprint); err != nil {
		t.Fatalf("trust install: %v\n%s", err, out)
	}
	if err := opens(); err != nil {
		t.Fatalf("after install Chromium does not open the portal: %v", err)
	}

	if out, err := trust("uninstall", "--fingerprint", info.RootFingerprint); err != nil || !strings.Contains(out, "removed 1 entry") {
		t.Fatalf("trust uninstall: %v\n%s", err, out)
	}
	if err := opens(); err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
		t.Fatalf("after uninstall: %v, want a certificate error", err)
	}
}
