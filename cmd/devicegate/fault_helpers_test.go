package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// The fault tests run the real binary as separate processes, so that a
// process can be killed with SIGKILL (kill -9) in the middle of its work.

// buildBinary builds devicegate once for the test into its temporary
// directory (the Go build cache makes a second build cheap).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devicegate")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// faultProc is one running devicegate process.
type faultProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string            // its stderr
	urls map[string]string // "key: value" lines it printed on stdout
	done chan struct{}     // closed when it exited (and was reaped)
}

// startProc runs bin with args and waits up to 60 s until it printed every
// one of keys ("ca_url", "proxy_url", ...) on stdout. Its stderr goes to
// logFile. The process is killed when the test ends, if still running.
func startProc(t *testing.T, bin, logFile string, keys []string, args ...string) *faultProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &faultProc{t: t, cmd: cmd, log: logFile, urls: map[string]string{}, done: make(chan struct{})}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody waits any more: drop
			}
		}
		close(lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	deadline := time.After(60 * time.Second)
	for len(p.urls) < len(keys) {
		select {
		case line, ok := <-lines:
			if !ok {
				<-p.done
				log, _ := os.ReadFile(logFile)
				t.Fatalf("devicegate %s exited before it was ready:\n%s", strings.Join(args, " "), tail(log))
			}
			k, v, found := strings.Cut(line, ": ")
			for _, want := range keys {
				if found && k == want {
					p.urls[k] = strings.TrimSpace(v)
				}
			}
		case <-deadline:
			p.kill()
			log, _ := os.ReadFile(logFile)
			t.Fatalf("devicegate %s was not ready after 60 s:\n%s", strings.Join(args, " "), tail(log))
		}
	}
	return p
}

// kill sends SIGKILL (kill -9) and waits until the process is reaped.
func (p *faultProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("process %d did not die after SIGKILL", p.cmd.Process.Pid)
	}
}

// tail is the end of a log, for failure messages.
func tail(b []byte) string {
	const n = 4000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// faultRounds is the number of rounds of a fault test: def, or
// DEVICEGATE_FAULT_ROUNDS for the long form.
func faultRounds(t *testing.T, def int) int {
	t.Helper()
	if s := os.Getenv("DEVICEGATE_FAULT_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DEVICEGATE_FAULT_ROUNDS=%q: want a positive number", s)
		}
		return n
	}
	return def
}

// protectedShop initialises the CA of the config cfg and, through the admin
// CLI, store "shop" with "shop:kim" in role, phone-verified and protected
// with N devices; it returns the opened app (the caller closes it), the
// store and the sub-account.
func protectedShop(t *testing.T, cfg, role string, devices int) (*app, store.Tenant, store.SubAccount) {
	t.Helper()
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:kim", "--role", role)
	mustCLI(t, "admin", "--config", cfg, "sub", "phone", "shop:kim")
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "shop:kim", "--devices", strconv.Itoa(devices))
	ctx := context.Background()
	a, err := openApp(ctx, cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tenant, err := a.store.GetTenantByName(ctx, "shop")
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	sub, err := a.store.GetSubAccountByName(ctx, tenant.ID, "kim")
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	return a, tenant, sub
}
