package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestTemporaryAccountEndsChromium: a temporary sub-account's access ends
// at its window's end in the real Chromium, with nobody acting. The demo is
// built with -tags devicegate_testclock (never in a production build, see
// cmd/devicegate TestVerifyTestClockNotInProductionBinary) so the test can
// move its clock past the end: the certificate the browser made ends with
// the window, the high-risk page opens before the end and shows the
// refusal page after it, and the staff portal ends the session.
func TestTemporaryAccountEndsChromium(t *testing.T) {
	for _, tool := range []string{chromiumPath, "/usr/bin/pk12util", "/usr/bin/certutil", "/usr/bin/openssl"} {
		need(t, tool)
	}
	if os.Geteuid() != 0 {
		missing(t, "root (to install the Chromium AutoSelectCertificateForUrls policy)")
	}
	offset := filepath.Join(t.TempDir(), "clock-offset")
	setOffset := func(d string) {
		if err := os.WriteFile(offset, []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setOffset("0s")
	// The proxy judges staleness by the same clock: allow the jump.
	d := startDemoConf(t, []string{"-tags", "devicegate_testclock"}, []string{"DEVICEGATE_TESTCLOCK_FILE=" + offset}, "  max_staleness: 1h\n")
	shots := newShots(t)
	home := t.TempDir()
	nssdb := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "certutil", "-N", "-d", nssdb, "--empty-password")
	run(t, "certutil", "-A", "-d", nssdb, "-n", "devicegate demo root", "-t", "C,,", "-i", d.info.RootCAFile)
	proxyURL, _ := url.Parse(d.info.ProxyURL)
	installPolicy(t, `{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://`+proxyURL.Host+`\",\"filter\":{}}"]}`)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	proxy := strings.TrimSuffix(d.info.ProxyURL, "/")

	// A temporary customer-service account whose window ends in 20 minutes
	// (the proxy's max_staleness bounds how far its clock may jump).
	user := d.user(t, "demo-store:dave")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(user.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(20 * time.Minute).UTC().Truncate(time.Second)
	d.admin(t, "sub", "add", user.Name, "--position", "customer-service", "--password-file", pw, "--until", end.Format(time.RFC3339))
	if list := d.admin(t, "sub", "list", "demo-store"); !strings.Contains(list, "temporary until") {
		t.Fatalf("sub list does not show the temporary account:\n%s", list)
	}
	uri, err := url.Parse(strings.TrimSpace(d.admin(t, "sub", "phone", user.Name)))
	if err != nil {
		t.Fatal(err)
	}
	d.admin(t, "sub", "protect", user.Name, "--devices", "1")

	ctx := startChromium(t, home)
	p := chromePage{ctx}
	staffLogin(t, p, portal, user, uri.Query().Get("secret"))
	waitFor(t, p, "the temporary account's end on the staff page", `document.getElementById("staff-window") !== null`)
	const p12Password = "e2e-temporary-pw"
	p12 := enrollInPage(t, p, portal, "promo desk", p12Password, false)
	if leaf := p12Leaf(t, p12, p12Password); !leaf.NotAfter.Equal(end) {
		t.Fatalf("certificate NotAfter %v, want the window's end %v", leaf.NotAfter, end)
	}
	p12File := filepath.Join(t.TempDir(), "promo.p12")
	if err := os.WriteFile(p12File, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "pk12util", "-d", nssdb, "-i", p12File, "-W", p12Password)

	var heading string
	do(t, ctx, "app login and a high-risk page inside the window",
		chromedp.Navigate(proxy+"/login"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user.Name),
		chromedp.SendKeys(chromedp.ID("password"), user.Password),
		chromedp.Submit(chromedp.ID("username")),
		chromedp.WaitNotPresent(chromedp.ID("password")),
		chromedp.Navigate(proxy+"/orders/sold"),
		capture(&heading, chromedp.Text(chromedp.CSS("h1"))),
	)
	if heading != "Sold items (high risk)" {
		t.Fatalf("/orders/sold inside the window shows %q", heading)
	}
	shots.take(ctx, "15-temporary-inside-window")

	// The demo's clock passes the window's end; nobody does anything.
	setOffset("21m")
	var title, reason string
	do(t, ctx, "the high-risk page after the window",
		chromedp.Navigate(proxy+"/orders/sold"),
		capture(&title, chromedp.Text(chromedp.CSS("h1"))),
		capture(&reason, chromedp.Text(chromedp.CSS("p.code code"))),
	)
	// The certificate ended with the window (the CA capped it), so the
	// proxy names that; the TLS handshake, on the real clock, still passed.
	if title != "Sorry, cannot pass verification" || (reason != "certificate_expired" && reason != "outside_validity_window") {
		t.Fatalf("after the window: %q %q", title, reason)
	}
	t.Logf("after the window the proxy refuses with %s", reason)
	shots.take(ctx, "16-temporary-after-window-proxy")
	p.open(t, portal+"/staff/")
	if body := runScript(t, p, "the staff page", `return document.body.innerText`); !strings.Contains(body, "outside its validity period") {
		t.Fatalf("the staff portal after the window:\n%s", body)
	}
	shots.take(ctx, "17-temporary-after-window-portal")
}
