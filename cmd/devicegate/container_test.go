package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// requirePodmanEnv makes a missing podman (or a non-root run) a failure
// instead of a skip; scripts/test.sh sets it with CI=true.
const requirePodmanEnv = "DEVICEGATE_REQUIRE_PODMAN"

// containerUID is the image's USER.
const containerUID = 65532

// podman runs podman with its storage in a directory of the test (vfs: no
// overlay mount to undo), so the test leaves the machine's podman alone,
// and runc (crun fails on this machine's cgroup layout).
type podman struct {
	t    *testing.T
	base []string
}

// logs is a container's stdout and stderr.
func (p *podman) logs(name string) string {
	out, _ := exec.Command("podman", append(slices.Clone(p.base), "logs", name)...).CombinedOutput()
	return tail(out)
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	_, errPodman := exec.LookPath("podman")
	_, errRunc := exec.LookPath("runc")
	why := ""
	switch {
	case errPodman != nil || errRunc != nil:
		why = "podman and runc are not installed (Debian: apt-get install podman runc)"
	case os.Getuid() != 0:
		why = "the container test runs podman as root (the data directories belong to the image's user)"
	}
	if why != "" {
		if os.Getenv(requirePodmanEnv) == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	dir := t.TempDir()
	return &podman{t: t, base: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--volumepath", filepath.Join(dir, "volumes"),
		"--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}}
}

// run runs podman and returns its stdout; a failure ends the test.
func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *podman) try(args ...string) (string, error) {
	cmd := exec.Command("podman", append(slices.Clone(p.base), args...)...)
	var out strings.Builder
	cmd.Stdout = &out
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// TestContainerFlow builds the image of ./Dockerfile (its final stage, from
// the binary built here: no registry is reachable) and runs the roles of
// docker-compose.yml in containers, from configs/compose/ with only the
// addresses changed (host network, the PostgreSQL the test starts): CA
// init, the CA/portal node, the back-office app and two proxies. Through
// them: an enrolled device passes the high-risk page on both proxies, and
// after a revocation made with the admin CLI in the CA's container both
// refuse it. Every container's HEALTHCHECK (`devicegate health`) passes.
func TestContainerFlow(t *testing.T) {
	pm := newPodman(t)
	began := time.Now()
	// The image builds while PostgreSQL starts: the final stage from a
	// static binary built here.
	dir := t.TempDir()
	buildCtx := filepath.Join(dir, "context")
	bin := filepath.Join(buildCtx, "rootfs/usr/local/bin/devicegate")
	mkdirs(t, 0o755, filepath.Join(buildCtx, "data"))
	tag := "localhost/devicegate-test:" + randomHex(t, 6)
	t.Cleanup(func() { _, _ = pm.try("rmi", "-f", tag) })
	imageBuilt := make(chan error, 1)
	go func() { imageBuilt <- buildImage(pm, bin, buildCtx, tag) }()
	pg := pgtest.Start(t)
	dsn, err := url.Parse(pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-imageBuilt; err != nil {
		t.Fatal(err)
	}
	built := time.Since(began)

	// Secrets and volumes, owned by the image's user as in compose.
	secrets := filepath.Join(dir, "secrets")
	caData, proxy1Data, proxy2Data := filepath.Join(dir, "ca-data"), filepath.Join(dir, "proxy-1-data"), filepath.Join(dir, "proxy-2-data")
	mkdirs(t, 0o700, secrets, caData, proxy1Data, proxy2Data)
	const user, password = "shop:kim", "kim-backoffice-pw"
	writeOwned(t, filepath.Join(secrets, "seal_key"), randomHex(t, 32)+"\n")
	writeOwned(t, filepath.Join(secrets, "pgpass"), fmt.Sprintf("*:*:*:*:%s\n", randomHex(t, 12))) // pgtest trusts local connections
	writeOwned(t, filepath.Join(secrets, "backoffice_users"), user+" "+password+"\n")

	// The compose configs with only the addresses changed.
	caPort, portalPort, caAdminPort, boPort := port(t), port(t), port(t), port(t)
	proxyPorts, adminPorts := []string{port(t), port(t)}, []string{port(t), port(t)}
	pgHost := "postgres://" + dsn.User.Username() + "@" + dsn.Host + dsn.Path
	caCfg := composeConfig(t, dir, "ca.yaml", "ca.yaml", map[string]string{
		"postgres://devicegate@postgres:5432/devicegate": pgHost,
		"0.0.0.0:8443":           "127.0.0.1:" + caPort,
		"https://localhost:8443": "https://localhost:" + caPort,
		"0.0.0.0:8444":           "127.0.0.1:" + portalPort,
		"0.0.0.0:9090":           "127.0.0.1:" + caAdminPort,
		"https://localhost:9443": "https://localhost:" + proxyPorts[0],
	})
	var proxyCfgs []string
	for i := range 2 {
		proxyCfgs = append(proxyCfgs, composeConfig(t, dir, "proxy.yaml", fmt.Sprintf("proxy-%d.yaml", i+1), map[string]string{
			"postgres://devicegate@postgres:5432/devicegate": pgHost,
			"0.0.0.0:9443":            "127.0.0.1:" + proxyPorts[i],
			"0.0.0.0:9090":            "127.0.0.1:" + adminPorts[i],
			"https://localhost:8443":  "https://localhost:" + caPort,
			"https://localhost:8444/": "https://localhost:" + portalPort + "/",
			"http://backoffice:8081":  "http://127.0.0.1:" + boPort,
		}))
	}

	runArgs := func(name string, env map[string]string, volumes ...string) []string {
		a := []string{"--name", name, "--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"--read-only", "--cap-drop", "all", "--security-opt", "no-new-privileges", "-v", secrets + ":/run/secrets:ro"}
		for k, v := range env {
			a = append(a, "-e", k+"="+v)
		}
		for _, v := range volumes {
			a = append(a, "-v", v)
		}
		return a
	}
	prefix := "dgtest-" + randomHex(t, 4)
	var started []string
	t.Cleanup(func() {
		for _, name := range started {
			if t.Failed() {
				t.Logf("--- %s:\n%s", name, pm.logs(name))
			}
			_, _ = pm.try("rm", "-f", "-t", "2", name)
		}
	})
	start := func(name string, env map[string]string, volumes []string, cmd ...string) string {
		full := prefix + "-" + name
		started = append(started, full)
		args := append([]string{"run", "-d"}, runArgs(full, env, volumes...)...)
		pm.run(append(append(args, tag), cmd...)...)
		return full
	}
	caMounts := []string{caCfg + ":/etc/devicegate/ca.yaml:ro", caData + ":/data"}

	// CA init, once, as docker-compose.yml says.
	initArgs := append([]string{"run", "--rm"}, runArgs(prefix+"-init", nil, caMounts...)...)
	pm.run(append(initArgs, tag, "ca", "--config", "/etc/devicegate/ca.yaml", "init")...)

	caName := start("ca", map[string]string{
		healthURLsEnv: fmt.Sprintf("https://localhost:%s/healthz https://localhost:%s/", caPort, portalPort),
		healthRootEnv: "/data/ca/root.crt",
	}, caMounts, "serve", "--config", "/etc/devicegate/ca.yaml")
	boName := start("backoffice", map[string]string{healthURLsEnv: "http://127.0.0.1:" + boPort + "/login"}, nil,
		"backoffice", "--listen", "127.0.0.1:"+boPort, "--users-file", "/run/secrets/backoffice_users")
	var proxyNames []string
	for i, data := range []string{proxy1Data, proxy2Data} {
		proxyNames = append(proxyNames, start(fmt.Sprintf("proxy-%d", i+1), map[string]string{healthURLsEnv: "http://127.0.0.1:" + adminPorts[i] + "/metrics"},
			[]string{proxyCfgs[i] + ":/etc/devicegate/proxy.yaml:ro", caData + ":/ca-data:ro", data + ":/data"},
			"proxy", "--config", "/etc/devicegate/proxy.yaml"))
	}
	// Every role is up when its HEALTHCHECK passes.
	for _, name := range append([]string{caName, boName}, proxyNames...) {
		waitHealthy(t, pm, name)
	}
	up := time.Since(began)

	// The operator's admin CLI, in the CA's container.
	admin := func(args ...string) string {
		return pm.run(append([]string{"exec", caName, "/usr/local/bin/devicegate", "admin", "--config", "/etc/devicegate/ca.yaml"}, args...)...)
	}
	admin("store", "add", "shop")
	admin("sub", "add", user, "--role", "cs-supervisor")
	admin("sub", "phone", user)
	admin("sub", "protect", user, "--devices", "1")
	code := strings.TrimSpace(admin("sub", "ticket", user))

	// The device enrolls against the CA container (key made here).
	root := filepath.Join(caData, "ca", "root.crt")
	pc := filepath.Join(dir, "kim-pc")
	p12pw := filepath.Join(dir, "p12pw")
	if err := os.WriteFile(p12pw, []byte("correct-horse-battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "enroll", "--url", "https://localhost:"+caPort, "--code", code, "--out", pc, "--root", root, "--p12-password-file", p12pw).CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}

	// The high-risk page through both proxies, then the revocation.
	status := func(i int) int {
		return proxyStatus(t, demoInfo{ProxyURL: "https://localhost:" + proxyPorts[i], RootCAFile: root}, pc, user, password)
	}
	for i := range proxyPorts {
		waitFor(t, fmt.Sprintf("proxy-%d lets the enrolled device see the high-risk page", i+1), 10*time.Second, func() bool { return status(i) == http.StatusOK })
	}
	var listing struct {
		Devices []struct{ ID, Status string } `json:"devices"`
	}
	if err := json.Unmarshal([]byte(admin("sub", "devices", user, "--json")), &listing); err != nil || len(listing.Devices) != 1 {
		t.Fatalf("sub devices: %v %+v", err, listing)
	}
	admin("device", "revoke", listing.Devices[0].ID)
	revoked := time.Now()
	for i := range proxyPorts {
		waitFor(t, fmt.Sprintf("proxy-%d refuses the revoked device", i+1), 10*time.Second, func() bool { return status(i) == http.StatusForbidden })
	}
	t.Logf("image built (PostgreSQL started meanwhile) in %v, 4 containers healthy after %v, revocation refused on both proxies after %v, total %v",
		built.Round(time.Millisecond), up.Round(time.Millisecond), time.Since(revoked).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// buildImage builds the static binary bin in the build context and the
// image of ./Dockerfile's final stage from it (no registry needed).
func buildImage(pm *podman, bin, buildCtx, tag string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	args := []string{"build", "--format", "docker", "--build-arg", "BINARY=host", "-t", tag, "-f", filepath.Join(repoRoot, "Dockerfile"), buildCtx}
	if out, err := pm.try(args...); err != nil {
		return fmt.Errorf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// composeConfig writes configs/compose/src with each key replaced by its
// value (every key must occur: the test follows the file's shape).
func composeConfig(t *testing.T, dir, src, dst string, replace map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "configs/compose", src))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for old, repl := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("configs/compose/%s no longer has %q", src, old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	path := filepath.Join(dir, dst)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitHealthy runs the container's HEALTHCHECK until it passes (60 s).
func waitHealthy(t *testing.T, pm *podman, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := pm.try("healthcheck", "run", name)
		if err == nil {
			return
		}
		running, _ := pm.try("inspect", "--format", "{{.State.Running}}", name)
		if time.Now().After(deadline) || strings.TrimSpace(running) == "false" {
			// The same check by hand, for its message.
			health, _ := pm.try("exec", name, "/usr/local/bin/devicegate", "health")
			state, _ := pm.try("inspect", "--format", "exit {{.State.ExitCode}} {{.State.Error}}", name)
			t.Fatalf("%s is not healthy (60 s at most): %v %s\n%s\n%s\n%s", name, err, out, health, state, pm.logs(name))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mkdirs(t *testing.T, mode os.FileMode, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, containerUID, containerUID); err != nil {
			t.Fatal(err)
		}
	}
}

// writeOwned writes a secret file readable only by the image's user.
func writeOwned(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, containerUID, containerUID); err != nil {
		t.Fatal(err)
	}
}

func port(t *testing.T) string {
	t.Helper()
	_, p, _ := net.SplitHostPort(freePort(t))
	return p
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
