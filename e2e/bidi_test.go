package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// bidi drives a browser over WebDriver BiDi (the W3C protocol Firefox
// speaks natively): just enough for a test to navigate and run scripts in
// the page.
type bidi struct {
	t       *testing.T
	ws      *websocket.Conn
	mu      sync.Mutex
	nextID  int
	context string // the top-level browsing context
}

type bidiReply struct {
	ID      int             `json:"id"`
	Type    string          `json:"type"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// startFirefox runs Debian's Firefox ESR headless with a fresh profile
// (prefs in user.js, no first-run or background network) and opens a BiDi
// session. profile is where the test puts the NSS database (cert9.db).
func startFirefox(t *testing.T, profile string, prefs map[string]any) *bidi {
	t.Helper()
	var userJS strings.Builder
	for k, v := range prefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&userJS, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(firefoxPath, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "HOME="+profile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// "WebDriver BiDi listening on ws://127.0.0.1:PORT"
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, after, ok := strings.Cut(sc.Text(), "WebDriver BiDi listening on "); ok {
				addr <- strings.TrimSpace(after)
			}
		}
	}()
	var url string
	select {
	case url = <-addr:
	case <-time.After(60 * time.Second):
		t.Fatal("Firefox did not start its WebDriver BiDi listener")
	}
	// coder/websocket sends no Origin header: Firefox refuses WebSocket
	// clients that send one (web pages) unless a pref allows them.
	ws, _, err := websocket.Dial(context.Background(), url+"/session", nil)
	if err != nil {
		t.Fatalf("BiDi connect: %v", err)
	}
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	b := &bidi{t: t, ws: ws}
	b.call("session.new", map[string]any{"capabilities": map[string]any{}}, nil)
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	b.call("browsingContext.getTree", map[string]any{}, &tree)
	if len(tree.Contexts) == 0 {
		t.Fatal("BiDi: no browsing context")
	}
	b.context = tree.Contexts[0].Context
	return b
}

// call sends one command and decodes its result; an error reply fails the
// test. Events in between are skipped.
func (b *bidi) call(method string, params any, result any) {
	b.t.Helper()
	if err := b.command(method, params, result); err != nil {
		b.t.Fatalf("BiDi %s: %v", method, err)
	}
}

// command sends one command and waits for its reply.
func (b *bidi) command(method string, params any, result any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	id := b.nextID
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	for {
		var r bidiReply
		if err := wsjson.Read(ctx, b.ws, &r); err != nil {
			return err
		}
		if r.ID != id {
			continue // an event
		}
		if r.Type == "error" {
			return fmt.Errorf("%s: %s", r.Error, r.Message)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	}
}

// open opens url and waits until it has loaded.
func (b *bidi) open(t *testing.T, url string) {
	t.Helper()
	b.call("browsingContext.navigate", map[string]any{"context": b.context, "url": url, "wait": "complete"}, nil)
}

// try runs a script body in the page (awaiting a returned promise) and
// returns its value as a string.
func (b *bidi) try(body string) (string, error) {
	var out struct {
		Type             string `json:"type"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	err := b.command("script.evaluate", map[string]any{"expression": "(async () => {" + body + "})()",
		"target": map[string]any{"context": b.context}, "awaitPromise": true}, &out)
	if err != nil {
		return "", err
	}
	if out.Type != "success" {
		return "", fmt.Errorf("script: %s", out.ExceptionDetails.Text)
	}
	return fmt.Sprint(out.Result.Value), nil
}
