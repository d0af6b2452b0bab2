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
	"time"
)

// page is a browser tab driven by a test (Firefox over BiDi, WebKit over
// classic WebDriver): open a URL, run a script body (it may return a
// value or a promise of one).
type page interface {
	open(t *testing.T, url string)
	try(body string) (string, error)
}

// run runs a script body that must succeed.
func runScript(t *testing.T, p page, what, body string) string {
	t.Helper()
	v, err := p.try(body)
	if err != nil {
		dump, _ := p.try(`return document.location.href + "\n" + document.body.innerText`)
		t.Fatalf("%s: %v; the page:\n%s", what, err, dump)
	}
	return v
}

// waitFor runs expr until it is true (15 s at most).
func waitFor(t *testing.T, p page, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if v, err := p.try("return String(" + expr + ")"); err == nil && v == "true" {
			return
		}
		if time.Now().After(deadline) {
			dump, _ := p.try(`return document.location.href + "\n" + document.body.innerText`)
			t.Fatalf("%s did not happen; the page:\n%s", what, dump)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// protectedStaff makes demo-store:dave a sub-account with phone
// verification and protection N=2 through the admin CLI, and returns its
// login and TOTP secret.
func protectedStaff(t *testing.T, d *demoRun) (user struct{ Name, Password string }, totpSecret string) {
	t.Helper()
	user = d.user(t, "demo-store:dave")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(user.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.admin(t, "sub", "add", user.Name, "--role", "customer-service", "--password-file", pw)
	uri, err := url.Parse(strings.TrimSpace(d.admin(t, "sub", "phone", user.Name)))
	if err != nil {
		t.Fatal(err)
	}
	d.admin(t, "sub", "protect", user.Name, "--devices", "2")
	return user, uri.Query().Get("secret")
}

// staffLogin logs in to the portal with password and TOTP code.
func staffLogin(t *testing.T, p page, portal string, user struct{ Name, Password string }, totpSecret string) {
	t.Helper()
	p.open(t, portal+"/staff/login")
	runScript(t, p, "staff login", `document.getElementById("username").value = `+strconv.Quote(user.Name)+`;
		document.getElementById("password").value = `+strconv.Quote(user.Password)+`;
		document.getElementById("staff-login").requestSubmit(); return "sent"`)
	waitFor(t, p, "the TOTP step", `document.getElementById("code") !== null`)
	runScript(t, p, "TOTP", `document.getElementById("code").value = `+strconv.Quote(code(t, totpSecret))+`;
		document.getElementById("staff-totp").requestSubmit(); return "sent"`)
	waitFor(t, p, "the staff home", `document.getElementById("install") !== null`)
}

// enrollInPage runs the enrollment page and returns the PKCS#12 file the
// page made (taken from the blob it hands to the download link; the
// download itself is not started).
func enrollInPage(t *testing.T, p page, portal, label, password string, compat bool) []byte {
	t.Helper()
	p.open(t, portal+"/staff/enroll")
	return submitKeyForm(t, p, label, password, compat)
}

// submitKeyForm fills the open enrollment (or renewal) page's form, sets
// the label unless it is "" (a renewal's label is the device's), and
// returns the PKCS#12 file the page made.
func submitKeyForm(t *testing.T, p page, label, password string, compat bool) []byte {
	t.Helper()
	waitFor(t, p, "the environment check", `!document.getElementById("enroll-form").hidden`)
	setLabel := ""
	if label != "" {
		setLabel = `document.getElementById("label").value = ` + strconv.Quote(label) + `;`
	}
	runScript(t, p, "submit "+label, `window.__p12 = null;
		const made = URL.createObjectURL;
		URL.createObjectURL = (b) => { window.__p12 = b; return made.call(URL, b); };
		HTMLAnchorElement.prototype.click = function () {};
		`+setLabel+`
		document.getElementById("p12-password").value = `+strconv.Quote(password)+`;
		document.getElementById("p12-password2").value = `+strconv.Quote(password)+`;
		document.getElementById("compat").checked = `+strconv.FormatBool(compat)+`;
		document.getElementById("start").click(); return "started"`)
	waitFor(t, p, "the certificate of "+label, `!document.getElementById("result").hidden && window.__p12 !== null`)
	if got := runScript(t, p, "which scripts "+label+" loaded", "return String("+legacyModuleLoaded+")"); got != strconv.FormatBool(compat) {
		t.Fatalf("enrollment of %s (compatibility %v) loaded the 3DES module: %s", label, compat, got)
	}
	b64 := runScript(t, p, "read the PKCS#12", `return window.__p12.arrayBuffer().then((buf) => {
		let s = ""; for (const c of new Uint8Array(buf)) s += String.fromCharCode(c); return btoa(s); })`)
	p12, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(p12) < 500 {
		t.Fatalf("PKCS#12 made by the browser: %d bytes, %v", len(p12), err)
	}
	checkP12Layout(t, p12, password, compat)
	return p12
}

// checkP12Layout reads a browser-made PKCS#12 with OpenSSL: AES-256 with
// PBKDF2-SHA256 and a SHA-256 MAC (3DES and a SHA-1 MAC in compatibility
// mode), and an 8-byte MAC salt, which macOS keychains need.
func checkP12Layout(t *testing.T, p12 []byte, password string, compat bool) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "check.p12")
	if err := os.WriteFile(file, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "pkcs12", "-info", "-noout", "-in", file, "-passin", "pass:"+password).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12: %v\n%s", err, out)
	}
	want := []string{"MAC: sha256", "PBES2, PBKDF2, AES-256-CBC", "PRF hmacWithSHA256", "salt length: 8"}
	if compat {
		want = []string{"MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC", "salt length: 8"}
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Fatalf("PKCS#12 layout lacks %q:\n%s", w, out)
		}
	}
}
