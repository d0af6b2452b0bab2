package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

// TestSIGTERMUnderLoadKeepsAudit stops the proxy (`devicegate proxy`, the
// real binary, on SQLite) with SIGTERM while clients send high-risk
// requests as fast as it answers them, through the general path (whoami
// binding) and the fast path (header binding). Every request answered 200
// was allowed, so its decision must be in the store's audit log once the
// process has exited: the listeners drain first, then the auditor writes
// its queue, then the store closes. The process exits with status 0, and
// no audit gap is recorded.
func TestSIGTERMUnderLoadKeepsAudit(t *testing.T) {
	bin := buildBinary(t)
	const user, password = "shop:kim", "kim-backoffice-pw"
	hash, err := secrets.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	bo := httptest.NewServer(backoffice.New([]backoffice.User{{Name: user, PasswordHash: hash}}))
	defer bo.Close()
	plainApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	defer plainApp.Close()
	tests := []struct {
		name    string
		binding func(keyFile string) string // the upstream's binding and URL
		login   bool
	}{
		{"whoami binding (net/http path)", func(string) string {
			return fmt.Sprintf("url: %q\n      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}", bo.URL, bo.URL+"/whoami")
		}, true},
		{"header binding (fast path)", func(keyFile string) string {
			return fmt.Sprintf("url: %q\n      binding: {mode: header, hmac_key_file: %q}", plainApp.URL, keyFile)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "hmac.key")
			if _, err := secrets.LoadOrCreateKey(keyFile); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "devicegate.yaml")
			conf := fmt.Sprintf(`data_dir: data
log: {level: warn}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  upstreams:
    - name: app
      %s
      hosts: [localhost, 127.0.0.1]
      permissions:
        - {path: /orders/sold, point: orders.sold}
`, tc.binding(keyFile))
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			sigtermUnderLoad(t, bin, cfg, tc.login, user, password)
		})
	}
}

func sigtermUnderLoad(t *testing.T, bin, cfg string, login bool, user, password string) {
	ctx := context.Background()
	a, tenant, sub := protectedShop(t, cfg, "cs-supervisor", 2)
	defer a.Close()
	roots := a.ca.Keys().RootPool()
	proc := startProc(t, bin, filepath.Join(filepath.Dir(cfg), "proxy.log"), []string{"proxy_url"}, "proxy", "--config", cfg)
	proxyURL := proc.urls["proxy_url"]
	dev, _ := faultDevice(t, ctx, a.ca, tenant.ID, sub.ID, roots)
	dev.Transport.(*http.Transport).MaxIdleConnsPerHost = loadClients
	waitStatus(t, "high-risk path", 10*time.Second, func() (int, string) {
		if login {
			if resp, err := dev.PostForm(proxyURL+"/login", url.Values{"username": {user}, "password": {password}}); err == nil {
				resp.Body.Close()
			}
		}
		return proxyGet(dev, proxyURL+"/orders/sold")
	}, http.StatusOK)
	before := allowedInAudit(t, a.store, tenant.ID)

	// Load until the proxy is gone; SIGTERM once enough was answered.
	var answered, failed atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range loadClients {
		wg.Go(func() {
			for {
				status, _ := proxyGet(dev, proxyURL+"/orders/sold")
				switch status {
				case http.StatusOK:
					if answered.Add(1) == loadBeforeSIGTERM {
						once.Do(func() { close(enough) })
					}
				case 0: // refused: the listener is closed
					select {
					case <-proc.done:
						return
					default:
					}
				default:
					failed.Add(1)
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d high-risk requests answered in 60 s", answered.Load())
	}
	atTERM := answered.Load()
	if err := syscall.Kill(proc.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	termed := time.Now()
	select {
	case <-proc.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy did not exit within 30 s of SIGTERM")
	}
	stopped := time.Since(termed)
	wg.Wait()
	if code := proc.cmd.ProcessState.ExitCode(); code != 0 {
		log, _ := os.ReadFile(proc.log)
		t.Fatalf("exit status %d after SIGTERM:\n%s", code, tail(log))
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d high-risk requests were answered with another status than 200", n)
	}

	got := allowedInAudit(t, a.store, tenant.ID) - before
	if got < answered.Load() {
		t.Fatalf("%d high-risk requests answered 200, only %d allowed decisions in the audit log: %d lost at SIGTERM",
			answered.Load(), got, answered.Load()-got)
	}
	gaps, err := store.AuditGaps(ctx, a.store, tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) > 0 {
		t.Fatalf("audit gaps after SIGTERM: %s", store.DescribeAuditGaps(gaps))
	}
	if err := a.store.VerifyAudit(ctx, tenant.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d answered 200 (%d after SIGTERM), %d allowed decisions logged; exited %v after SIGTERM",
		answered.Load(), answered.Load()-atTERM, got, stopped.Round(time.Millisecond))
}

const (
	loadClients       = 8   // concurrent clients of the one device
	loadBeforeSIGTERM = 400 // high-risk answers before the signal
)

// allowedInAudit is the number of allowed proxy decisions in a store's
// audit log (a coalesced record carries its count).
func allowedInAudit(t *testing.T, st store.Store, tenantID string) int64 {
	t.Helper()
	var n, after int64
	for {
		evs, err := st.ListAudit(context.Background(), tenantID, store.AuditFilter{Action: "proxy.allow", AfterSeq: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return n
		}
		for _, ev := range evs {
			c, err := strconv.ParseInt(ev.Detail["count"], 10, 64)
			if err != nil {
				c = 1
			}
			n += c
			after = ev.Seq
		}
	}
}
