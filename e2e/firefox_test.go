package e2e

import (
	"encoding/base64"
	"net/url"
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
	dave := d.user(t, "demo-store:dave")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(dave.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.admin(t, "sub", "add", dave.Name, "--role", "customer-service", "--password-file", pw)
	uri, err := url.Parse(strings.TrimSpace(d.admin(t, "sub", "phone", dave.Name)))
	if err != nil {
		t.Fatal(err)
	}
	staffSecret := uri.Query().Get("secret")
	d.admin(t, "sub", "protect", dave.Name, "--devices", "2")

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

	ff.navigate(portal + "/staff/login")
	ff.do("staff login", `document.getElementById("username").value = `+strconv.Quote(dave.Name)+`;
		document.getElementById("password").value = `+strconv.Quote(dave.Password)+`;
		document.getElementById("staff-login").requestSubmit(); "sent"`)
	ff.waitFor("the TOTP step", `document.getElementById("code") !== null`)
	ff.do("TOTP", `document.getElementById("code").value = `+strconv.Quote(code(t, staffSecret))+`;
		document.getElementById("staff-totp").requestSubmit(); "sent"`)
	ff.waitFor("the staff home", `document.getElementById("install") !== null`)

	const p12Password = "e2e-p12-password"
	enroll := func(label string, compat bool) []byte {
		ff.navigate(portal + "/staff/enroll")
		ff.waitFor("the environment check", `!document.getElementById("enroll-form").hidden`)
		// Keep the PKCS#12 blob the page hands to the download link.
		ff.do("enroll "+label, `window.__p12 = null;
			const made = URL.createObjectURL;
			URL.createObjectURL = (b) => { window.__p12 = b; return made.call(URL, b); };
			document.getElementById("label").value = `+strconv.Quote(label)+`;
			document.getElementById("p12-password").value = `+strconv.Quote(p12Password)+`;
			document.getElementById("p12-password2").value = `+strconv.Quote(p12Password)+`;
			document.getElementById("compat").checked = `+strconv.FormatBool(compat)+`;
			document.getElementById("start").click(); "started"`)
		ff.waitFor("the certificate of "+label, `!document.getElementById("result").hidden && window.__p12 !== null`)
		b64 := ff.do("read the PKCS#12", `window.__p12.arrayBuffer().then((buf) => {
			let s = ""; for (const c of new Uint8Array(buf)) s += String.fromCharCode(c); return btoa(s); })`)
		p12, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(p12) < 500 {
			t.Fatalf("PKCS#12 from Firefox: %d bytes, %v", len(p12), err)
		}
		return p12
	}
	p12File := filepath.Join(t.TempDir(), "firefox.p12")
	if err := os.WriteFile(p12File, enroll("firefox workstation", false), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "pk12util", "-d", nssdb, "-i", p12File, "-W", p12Password)

	// The app's own login through the proxy, then a high-risk page with
	// the certificate Firefox now holds.
	ff.navigate(proxy + "/login")
	ff.do("app login", `document.getElementById("username").value = `+strconv.Quote(dave.Name)+`;
		document.getElementById("password").value = `+strconv.Quote(dave.Password)+`;
		document.getElementById("username").form.requestSubmit(); "sent"`)
	ff.waitFor("the app session", `document.getElementById("password") === null`)
	ff.navigate(proxy + "/orders/sold")
	if h := ff.do("read the page", `document.querySelector("h1").innerText`); h != "Sold items (high risk)" {
		t.Fatalf("/orders/sold in Firefox shows %q", h)
	}

	ff.navigate(portal + "/staff/enroll")
	ff.do("check installation", `document.getElementById("check-install").click(); "clicked"`)
	ff.waitFor("the check's answer", `document.getElementById("check-result").classList.contains("notice")`)
	if got := ff.do("read the check", `document.getElementById("check-result").innerText`); !strings.Contains(got, "Installed (1/2)") {
		t.Fatalf("check installation in Firefox shows %q", got)
	}

	// The compatibility (3DES) file Firefox makes is a valid PKCS#12 too.
	legacy := filepath.Join(t.TempDir(), "legacy.p12")
	if err := os.WriteFile(legacy, enroll("old windows pc", true), 0o600); err != nil {
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
