package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromePage drives a Chromium tab through the page interface the
// Firefox and WebKit tests use.
type chromePage struct{ ctx context.Context }

func (c chromePage) open(t *testing.T, url string) {
	t.Helper()
	do(t, c.ctx, "open "+url, chromedp.Navigate(url))
}

func (c chromePage) try(body string) (string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string]("(async () => { "+body+" })().then(String)", chromedp.EvalAwaitPromise))
}

// TestBrowserRenewalChromium: a staff member renews a computer's
// certificate in the real Chromium. Once the owner allowed an early
// renewal, the staff page offers "renew on this computer"; the page makes a
// new key in the browser and hands out a PKCS#12 whose certificate is for
// the same device (same identity, same slot) with a new serial, and the
// old serial is superseded.
func TestBrowserRenewalChromium(t *testing.T) {
	for _, tool := range []string{chromiumPath, "/usr/bin/certutil", "/usr/bin/openssl"} {
		need(t, tool)
	}
	d := startDemo(t)
	home := t.TempDir()
	if out, err := exec.Command(d.bin, "trust", "install", "--root", d.info.RootCAFile, "--no-system", "--home", home).CombinedOutput(); err != nil {
		t.Fatalf("trust install: %v\n%s", err, out)
	}
	user, secret := protectedStaff(t, d)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	p := chromePage{startChromium(t, home)}
	staffLogin(t, p, portal, user, secret)
	first := p12Leaf(t, enrollInPage(t, p, portal, "front desk", "renew-test-pw", false), "renew-test-pw")

	var listing struct {
		Installed int `json:"installed"`
		Devices   []struct{ ID, Serial, Status, Label string }
	}
	devices := func() {
		if err := json.Unmarshal([]byte(d.admin(t, "sub", "devices", user.Name, "--json")), &listing); err != nil {
			t.Fatal(err)
		}
	}
	devices()
	if len(listing.Devices) != 1 {
		t.Fatalf("devices: %+v", listing)
	}
	dev := listing.Devices[0]
	d.admin(t, "device", "allow-renew", "demo-store", dev.ID)

	p.open(t, portal+"/staff/")
	waitFor(t, p, "the renewal button", `document.querySelector('a.renew[href="/staff/devices/`+dev.ID+`/renew"]') !== null`)
	runScript(t, p, "click renew", `document.querySelector("a.renew").click(); return "ok"`)
	waitFor(t, p, "the renewal page", `document.getElementById("renewing") !== null && document.getElementById("label").readOnly && document.getElementById("label").value === "front desk"`)
	renewed := p12Leaf(t, submitKeyForm(t, p, "", "renew-test-pw", false), "renew-test-pw")

	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 || renewed.Subject.CommonName != first.Subject.CommonName ||
		len(renewed.URIs) != 1 || renewed.URIs[0].String() != first.URIs[0].String() {
		t.Fatalf("renewed certificate %s %v, first %s %v: want the same identity with a new serial",
			renewed.SerialNumber.Text(16), renewed.URIs, first.SerialNumber.Text(16), first.URIs)
	}
	devices()
	active := 0
	for _, x := range listing.Devices {
		if x.Status == "active" {
			active++
			if x.ID != dev.ID || x.Serial != renewed.SerialNumber.Text(16) {
				t.Fatalf("after renewal the active device is %+v, want %s with serial %s", x, dev.ID, renewed.SerialNumber.Text(16))
			}
		}
	}
	if active != 1 || listing.Installed != 1 {
		t.Fatalf("after renewal: %d active, installed %d; want the same single slot", active, listing.Installed)
	}
}

// p12Leaf reads the certificate of a browser-made PKCS#12 with OpenSSL.
func p12Leaf(t *testing.T, p12 []byte, password string) *x509.Certificate {
	t.Helper()
	file := filepath.Join(t.TempDir(), "device.p12")
	if err := os.WriteFile(file, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "pkcs12", "-in", file, "-clcerts", "-nokeys", "-passin", "pass:"+password).Output()
	if err != nil {
		t.Fatalf("openssl pkcs12: %v", err)
	}
	i := strings.Index(string(out), "-----BEGIN")
	var block *pem.Block
	if i >= 0 {
		block, _ = pem.Decode(out[i:])
	}
	if block == nil {
		t.Fatalf("no certificate in the PKCS#12:\n%s", out)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
