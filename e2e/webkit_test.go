package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
	dave, staffSecret := protectedStaff(t, d)
	wk := startWebKit(t)
	portal := strings.TrimSuffix(d.info.PortalURL, "/")
	staffLogin(t, wk, portal, dave, staffSecret)

	const p12Password = "e2e-p12-password"
	for _, compat := range []bool{false, true} {
		file := filepath.Join(t.TempDir(), "webkit.p12")
		if err := os.WriteFile(file, enrollInPage(t, wk, portal, "webkit "+strconv.FormatBool(compat), p12Password, compat), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "pk12util", "-l", file, "-W", p12Password)
	}
	if got := runScript(t, wk, "count", `return document.getElementById("installed-count").innerText`); got != "2" {
		t.Fatalf("after two enrollments the page counts %q installed", got)
	}
}

// webDriver is a classic W3C WebDriver session (the protocol WebKitGTK's
// driver speaks): navigate and run scripts, nothing more.
type webDriver struct {
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
	wd := &webDriver{base: "http://127.0.0.1:" + strconv.Itoa(port), timeout: 60 * time.Second}
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

// open opens u and waits until it has loaded.
func (wd *webDriver) open(t *testing.T, u string) {
	t.Helper()
	if err := wd.post("/url", map[string]any{"url": u}, nil); err != nil {
		t.Fatalf("WebKit: open %s: %v", u, err)
	}
}

// try runs a script body (WebDriver awaits a returned promise) and returns
// its value as a string.
func (wd *webDriver) try(body string) (string, error) {
	var v any
	err := wd.post("/execute/sync", map[string]any{"script": body, "args": []any{}}, &v)
	return fmt.Sprint(v), err
}
