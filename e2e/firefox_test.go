package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const firefoxPath = "/usr/bin/firefox-esr"

// firefoxPrefs: no first-run pages, updates, telemetry or other background
// traffic (only loopback is reachable), downloads without a dialog, and a
// client certificate presented without asking (the one in the profile).
var firefoxPrefs = map[string]any{
	"browser.shell.checkDefaultBrowser":                     false,
	"browser.startup.homepage_override.mstone":              "ignore",
	"browser.aboutwelcome.enabled":                          false,
	"datareporting.policy.dataSubmissionEnabled":            false,
	"datareporting.healthreport.uploadEnabled":              false,
	"toolkit.telemetry.reportingpolicy.firstRun":            false,
	"app.update.disabledForTesting":                         true,
	"app.normandy.enabled":                                  false,
	"extensions.update.enabled":                             false,
	"browser.safebrowsing.malware.enabled":                  false,
	"browser.safebrowsing.phishing.enabled":                 false,
	"browser.safebrowsing.downloads.enabled":                false,
	"network.captive-portal-service.enabled":                false,
	"network.connectivity-service.enabled":                  false,
	"services.settings.server":                              "http://127.0.0.1:9/",
	"browser.download.folderList":                           2,
	"browser.download.useDownloadDir":                       true,
	"browser.download.always_ask_before_handling_new_types": false,
	"security.default_personal_cert":                        "Select Automatically",
	"security.enterprise_roots.enabled":                     false,
	"remote.allow-origins":                                  "http://localhost",
}

// TestFirefoxEnrollment runs the staff member's part in Firefox ESR
// (Debian's, headless, over WebDriver BiDi): the browser-side key pair,
// CSR and PKCS#12 (default AES and the 3DES compatibility file) that the
// Chromium test covers, then the certificate in Firefox's own NSS database
// opens a high-risk page through the proxy and "check installation" sees
// it. The owner's part is done with the admin CLI.
func TestFirefoxEnrollment(t *testing.T) {
	for _, tool := range []string{firefoxPath, "/usr/bin/pk12util", "/usr/bin/certutil"} {
		need(t, tool)
	}
	d := startDemo(t)
	dave, staffSecret := protectedStaff(t, d)

	profile := t.TempDir()
	nssdb := "sql:" + profile
	run(t, "certutil", "-N", "-d", nssdb, "--empty-password")
	run(t, "certutil", "-A", "-d", nssdb, "-n", "devicegate demo root", "-t", "C,,", "-i", d.info.RootCAFile)
	prefs := map[string]any{"browser.download.dir": filepath.Join(profile, "downloads")}
	for k, v := range firefoxPrefs {
		prefs[k] = v
	}
	ff := startFirefox(t, profile, prefs)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	proxy := strings.TrimSuffix(d.info.ProxyURL, "/")
	staffLogin(t, ff, portal, dave, staffSecret)

	const p12Password = "e2e-p12-password"
	p12File := filepath.Join(t.TempDir(), "firefox.p12")
	if err := os.WriteFile(p12File, enrollInPage(t, ff, portal, "firefox workstation", p12Password, false), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "pk12util", "-d", nssdb, "-i", p12File, "-W", p12Password)

	// The app's own login through the proxy, then a high-risk page with
	// the certificate Firefox now holds.
	ff.open(t, proxy+"/login")
	runScript(t, ff, "app login", `document.getElementById("username").value = `+strconv.Quote(dave.Name)+`;
		document.getElementById("password").value = `+strconv.Quote(dave.Password)+`;
		document.getElementById("username").form.requestSubmit(); return "sent"`)
	waitFor(t, ff, "the app session", `document.getElementById("password") === null`)
	ff.open(t, proxy+"/orders/sold")
	if h := runScript(t, ff, "read the page", `return document.querySelector("h1").innerText`); h != "Sold items (high risk)" {
		t.Fatalf("/orders/sold in Firefox shows %q", h)
	}

	ff.open(t, portal+"/staff/enroll")
	runScript(t, ff, "check installation", `document.getElementById("check-install").click(); return "clicked"`)
	waitFor(t, ff, "the check's answer", `document.getElementById("check-result").classList.contains("notice")`)
	if got := runScript(t, ff, "read the check", `return document.getElementById("check-result").innerText`); !strings.Contains(got, "Installed (1/2)") {
		t.Fatalf("check installation in Firefox shows %q", got)
	}

	// The compatibility (3DES) file Firefox makes is a valid PKCS#12 too.
	legacy := filepath.Join(t.TempDir(), "legacy.p12")
	if err := os.WriteFile(legacy, enrollInPage(t, ff, portal, "old windows pc", p12Password, true), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "pk12util", "-l", legacy, "-W", p12Password)
}

// admin runs the demo's admin CLI on its data directory.
func (d *demoRun) admin(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(d.bin, append([]string{"admin", "--config", d.cfg}, args...)...)
	cmd.Dir = d.dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("devicegate admin %v: %v", args, err)
	}
	return string(out)
}
