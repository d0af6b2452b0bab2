package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// TestOwnerCertRequiredChromium: issue 13 item 4 in the real Chromium.
// The owner installs the main account's certificate on this computer with
// the in-browser flow ("My computers"), opens the owner console's own
// listener (portal.owner_listen, the only one that asks for a certificate;
// a policy selects it without a prompt) and turns the requirement on with
// a fresh phone code. Then an owner page is refused on the staff portal's
// listener (no certificate there) and opens at the owner console with the
// certificate; the CLI's recovery turns it off again.
func TestOwnerCertRequiredChromium(t *testing.T) {
	for _, tool := range []string{chromiumPath, "/usr/bin/pk12util", "/usr/bin/certutil", "/usr/bin/openssl"} {
		need(t, tool)
	}
	if os.Geteuid() != 0 {
		missing(t, "root (to install the Chromium AutoSelectCertificateForUrls policy)")
	}
	d := startDemoSections(t, nil, nil, "", "  owner_listen: 127.0.0.1:0\n")
	if d.info.OwnerConsoleURL == "" {
		t.Fatal("demo.json names no owner console")
	}
	shots := newShots(t)
	home := t.TempDir()
	nssdb := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "certutil", "-N", "-d", nssdb, "--empty-password")
	run(t, "certutil", "-A", "-d", nssdb, "-n", "devicegate demo root", "-t", "C,,", "-i", d.info.RootCAFile)
	console, _ := url.Parse(d.info.OwnerConsoleURL)
	installPolicy(t, `{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://`+console.Host+`\",\"filter\":{}}"]}`)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	owner := strings.TrimSuffix(d.info.OwnerConsoleURL, "/")

	ctx := startChromium(t, home)
	p := chromePage{ctx}
	var secret string
	do(t, ctx, "owner login",
		chromedp.Navigate(portal+"/owner/login"),
		chromedp.WaitVisible(chromedp.ID("store")),
		chromedp.SendKeys(chromedp.ID("store"), d.info.Store),
		chromedp.SendKeys(chromedp.ID("password"), d.info.OwnerPassword),
		chromedp.Submit(chromedp.ID("owner-login")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
		capture(&secret, chromedp.Text(chromedp.ID("totp-secret"))),
	)
	// Each code works once: the login spends this step's, the requirement
	// the next step's (accepted one step early).
	codeAt := func(step int) string {
		c, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(step)*30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	do(t, ctx, "owner TOTP",
		chromedp.SendKeys(chromedp.ID("code"), codeAt(0)),
		chromedp.Submit(chromedp.ID("owner-totp")),
		chromedp.WaitVisible(chromedp.ID("create-sub")),
	)

	// My computers: install the main account's certificate on this one.
	const p12Password = "e2e-owner-pw-1"
	p.open(t, portal+"/owner/certs")
	waitFor(t, p, "the owner's computers page", `document.getElementById("owner-install") !== null`)
	p.open(t, portal+"/owner/certs/enroll")
	p12 := submitKeyForm(t, p, "owner office pc", p12Password, false)
	if leaf := p12Leaf(t, p12, p12Password); leaf.Subject.CommonName != d.info.Store {
		t.Fatalf("owner certificate CN %q, want the store %q", leaf.Subject.CommonName, d.info.Store)
	}
	p12File := filepath.Join(t.TempDir(), "owner.p12")
	if err := os.WriteFile(p12File, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "pk12util", "-d", nssdb, "-i", p12File, "-W", p12Password)
	shots.take(ctx, "owner-01-enrolled")

	// At the owner console (the session cookie is the host's, whatever the
	// port) with the certificate: turn the requirement on.
	var marked, state string
	do(t, ctx, "turn the requirement on at the owner console",
		chromedp.Navigate(owner+"/owner/certs"),
		chromedp.WaitVisible(chromedp.ID("owner-required-submit")),
		capture(&marked, chromedp.Text(chromedp.ID("owner-devices"))),
		chromedp.SendKeys(chromedp.ID("owner-code"), codeAt(1)),
		chromedp.Click(chromedp.ID("owner-required-submit")),
		chromedp.WaitVisible(`//p[@role="status" and contains(., "now required")]`),
		capture(&state, chromedp.Text(chromedp.ID("owner-required-state"))),
	)
	if !strings.Contains(marked, "this computer") || !strings.HasPrefix(state, "Required") {
		t.Fatalf("owner console: devices %q, state %q", marked, state)
	}
	shots.take(ctx, "owner-02-required")

	// Without the certificate (the staff portal's listener never asks for
	// one): refused, with the way to the owner console.
	var refusal string
	do(t, ctx, "an owner page without the certificate",
		chromedp.Navigate(portal+"/owner/"),
		chromedp.WaitVisible(chromedp.ID("page-error")),
		capture(&refusal, chromedp.Text(chromedp.ID("page-error"))),
	)
	if !strings.Contains(refusal, "did not present one") {
		t.Fatalf("owner page without the certificate: %q", refusal)
	}
	shots.take(ctx, "owner-03-refused")

	// With it, at the owner console: the page opens.
	do(t, ctx, "an owner page with the certificate",
		chromedp.Navigate(owner+"/owner/"),
		chromedp.WaitVisible(chromedp.ID("create-sub")),
	)

	// Recovery on the CA host: off, and the plain portal serves the owner.
	if out := d.admin(t, "owner", "cert-required", d.info.Store, "--off"); !strings.Contains(out, "not required") {
		t.Fatalf("recovery: %q", out)
	}
	do(t, ctx, "an owner page after the recovery",
		chromedp.Navigate(portal+"/owner/"),
		chromedp.WaitVisible(chromedp.ID("create-sub")),
	)
}
