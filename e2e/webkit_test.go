package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	webkitDriverPath = "/usr/bin/WebKitWebDriver"
	miniBrowserPath  = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
	xvfbRunPath      = "/usr/bin/xvfb-run"
)

// TestWebKitEnrollment makes the staff member's key pair, CSR and PKCS#12
// files in WebKit (Debian's WebKitGTK MiniBrowser, the engine family of
// Safari; Safari itself needs macOS), driven over classic WebDriver on a
// virtual X display. The files must be valid for NSS (pk12util). The
// certificate is not used through the proxy here: MiniBrowser can only
// choose a client certificate in a dialog, which automation cannot answer.
func TestWebKitEnrollment(t *testing.T) {
	for _, tool := range []string{webkitDriverPath, miniBrowserPath, xvfbRunPath, "/usr/bin/pk12util"} {
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
	d.admin(t, "sub", "protect", dave.Name, "--devices", "2")

	wk := startWebKit(t)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	wk.navigate(portal + "/staff/login")
	wk.script(`document.getElementById("username").value = ` + strconv.Quote(dave.Name) + `;
		document.getElementById("password").value = ` + strconv.Quote(dave.Password) + `;
		document.getElementById("staff-login").requestSubmit(); return "sent"`)
	wk.waitFor("the TOTP step", `document.getElementById("code") !== null`)
	wk.script(`document.getElementById("code").value = ` + strconv.Quote(code(t, uri.Query().Get("secret"))) + `;
		document.getElementById("staff-totp").requestSubmit(); return "sent"`)
	wk.waitFor("the staff home", `document.getElementById("install") !== null`)

	const p12Password = "e2e-p12-password"
	for _, compat := range []bool{false, true} {
		wk.navigate(portal + "/staff/enroll")
		wk.waitFor("the environment check", `!document.getElementById("enroll-form").hidden`)
		wk.script(`window.__p12 = null;
			const made = URL.createObjectURL;
			URL.createObjectURL = (b) => { window.__p12 = b; return made.call(URL, b); };
			HTMLAnchorElement.prototype.click = function () {}; // no download dialog
			document.getElementById("label").value = "webkit " + ` + strconv.FormatBool(compat) + `;
			document.getElementById("p12-password").value = ` + strconv.Quote(p12Password) + `;
			document.getElementById("p12-password2").value = ` + strconv.Quote(p12Password) + `;
			document.getElementById("compat").checked = ` + strconv.FormatBool(compat) + `;
			document.getElementById("start").click(); return "started"`)
		wk.waitFor("the certificate", `!document.getElementById("result").hidden && window.__p12 !== null`)
		b64 := wk.asyncScript(`const done = arguments[arguments.length - 1];
			window.__p12.arrayBuffer().then((buf) => {
				let s = ""; for (const c of new Uint8Array(buf)) s += String.fromCharCode(c); done(btoa(s)); });`)
		p12, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(p12) < 500 {
			t.Fatalf("PKCS#12 from WebKit (compat=%v): %d bytes, %v", compat, len(p12), err)
		}
		file := filepath.Join(t.TempDir(), "webkit.p12")
		if err := os.WriteFile(file, p12, 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "pk12util", "-l", file, "-W", p12Password)
	}
	got := wk.script(`return document.getElementById("installed-count").innerText`)
	if got != "2" {
		t.Fatalf("after two enrollments the page counts %q installed", got)
	}
}

// webDriver is a classic W3C WebDriver session (the protocol WebKitGTK's
// driver speaks): navigate and run scripts, nothing more.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT/session/ID
	timeout time.Duration
}

// startWebKit runs WebKitWebDriver on a virtual X display and opens a
// MiniBrowser session that accepts the demo's server certificate.
func startWebKit(t *testing.T) *webDriver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(xvfbRunPath, "-a", webkitDriverPath, "--host=127.0.0.1", "--port="+strconv.Itoa(port))
	// Software rendering only: the virtual display has no GPU.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "WEBKIT_DISABLE_COMPOSITING_MODE=1", "WEBKIT_DISABLE_DMABUF_RENDERER=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// xvfb-run's children: Xvfb and the driver (which ends the browser).
		_ = exec.Command("pkill", "-P", strconv.Itoa(cmd.Process.Pid)).Run()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("WebKit driver log:\n%s", logs.String())
		}
	})
	wd := &webDriver{t: t, base: "http://127.0.0.1:" + strconv.Itoa(port), timeout: 60 * time.Second}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"acceptInsecureCerts":      true,
		"webkitgtk:browserOptions": map[string]any{"binary": miniBrowserPath, "args": []string{"--automation"}},
	}}}
	var session struct {
		SessionID string `json:"sessionId"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := wd.post("/session", caps, &session)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WebKit session: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wd.base += "/session/" + session.SessionID
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, wd.base, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return wd
}

func (wd *webDriver) post(path string, body, value any) error {
	data, _ := json.Marshal(body)
	client := &http.Client{Timeout: wd.timeout}
	resp, err := client.Post(wd.base+path, "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("%s: %s", resp.Status, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, out.Value)
	}
	if value != nil {
		return json.Unmarshal(out.Value, value)
	}
	return nil
}

func (wd *webDriver) navigate(u string) {
	wd.t.Helper()
	if err := wd.post("/url", map[string]any{"url": u}, nil); err != nil {
		wd.t.Fatalf("WebKit: open %s: %v", u, err)
	}
}

// try runs a synchronous script and returns its value as a string.
func (wd *webDriver) try(script string) (string, error) {
	var v any
	err := wd.post("/execute/sync", map[string]any{"script": script, "args": []any{}}, &v)
	return fmt.Sprint(v), err
}

func (wd *webDriver) script(script string) string {
	wd.t.Helper()
	v, err := wd.try(script)
	if err != nil {
		wd.t.Fatalf("WebKit script: %v", err)
	}
	return v
}

func (wd *webDriver) asyncScript(script string) string {
	wd.t.Helper()
	var v any
	if err := wd.post("/execute/async", map[string]any{"script": script, "args": []any{}}, &v); err != nil {
		wd.t.Fatalf("WebKit async script: %v", err)
	}
	return fmt.Sprint(v)
}

// waitFor runs expr until it is true (15 s at most).
func (wd *webDriver) waitFor(what, expr string) {
	wd.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if v, err := wd.try("return String(" + expr + ")"); err == nil && v == "true" {
			return
		}
		if time.Now().After(deadline) {
			page, _ := wd.try(`return document.location.href + "\n" + document.body.innerText`)
			wd.t.Fatalf("WebKit: %s did not happen; the page:\n%s", what, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
