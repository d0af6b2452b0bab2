package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/config"
)

// The systemd units in configs/systemd/ run the roles of an installation
// that is not a demo (docs/operations.md). What an operator installs:
const (
	unitBinary    = "/usr/local/bin/devicegate"
	unitConfig    = "/etc/devicegate/devicegate.yaml"
	unitConfigDir = "/etc/devicegate"
	unitUser      = "devicegate"
)

// systemdUnit is a parsed unit file: section -> key -> values in order (a
// key may repeat, e.g. SystemCallFilter).
type systemdUnit map[string]map[string][]string

// last is the effective value of a key that does not accumulate.
func (u systemdUnit) last(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// words is every space-separated word of a key that accumulates (an empty
// assignment resets the list, as systemd does).
func (u systemdUnit) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		if v == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func parseUnit(t *testing.T, path string) systemdUnit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := systemdUnit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: continuation lines are not used here", path, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// unitRoles maps each shipped unit to the devicegate command it runs.
var unitRoles = map[string]string{
	"devicegate-serve.service": "serve",
	"devicegate-proxy.service": "proxy",
}

// TestSystemdUnits checks configs/systemd/: each unit runs its role as the
// dedicated user with the hardening settings below; ExecStartPre and
// ExecStart name devicegate commands and flags that exist; every example
// config a unit reads (the one naming the unit in its header) passes
// check-config, keeps what it writes inside the unit's StateDirectory
// (ProtectSystem=strict makes everything else read-only) and reads its
// files from there or /etc/devicegate; a listener below port 1024 has
// CAP_NET_BIND_SERVICE and no unit holds any other capability; the
// sysusers.d and tmpfiles.d files create the user and the config
// directory; docs/operations.md installs every file; and
// `systemd-analyze verify` accepts the units where systemd is installed.
func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join(repoRoot, "configs", "systemd")
	units, err := filepath.Glob(filepath.Join(dir, "*.service"))
	if err != nil || len(units) != len(unitRoles) {
		t.Fatalf("units in %s: %v %v, want %d", dir, units, err, len(unitRoles))
	}
	examples, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("example configs in %s: %v %v", dir, examples, err)
	}
	ops, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The example configs' ${VAR} (none today) and the PostgreSQL DSN's
	// passfile need nothing from the environment.
	for _, path := range units {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			role, ok := unitRoles[name]
			if !ok {
				t.Fatalf("unknown unit %s: add it to unitRoles", name)
			}
			u := parseUnit(t, path)
			checkUnitHardening(t, u)
			checkUnitCommands(t, u, role)
			var used []string
			for _, ex := range examples {
				header, _ := os.ReadFile(ex)
				if strings.Contains(string(header), name) {
					used = append(used, ex)
					checkUnitConfig(t, u, role, ex)
				}
			}
			if len(used) == 0 {
				t.Errorf("no example config in %s names %s in its header", dir, name)
			}
			if !strings.Contains(string(ops), "configs/systemd/"+name) {
				t.Errorf("docs/operations.md does not install configs/systemd/%s", name)
			}
		})
	}
	for _, ex := range examples {
		if !strings.Contains(string(ops), "configs/systemd/"+filepath.Base(ex)+" "+unitConfig) {
			t.Errorf("docs/operations.md does not install configs/systemd/%s as %s", filepath.Base(ex), unitConfig)
		}
	}
	checkSysusers(t, dir, string(ops))
	t.Run("systemd-analyze", func(t *testing.T) { verifyUnits(t, units) })
}

// hardening is what every unit must say (exact effective values).
var hardening = map[string]string{
	"User":                    unitUser,
	"Group":                   unitUser,
	"StateDirectory":          "devicegate",
	"StateDirectoryMode":      "0700",
	"UMask":                   "0077",
	"NoNewPrivileges":         "yes",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"PrivateMounts":           "yes",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectKernelLogs":       "yes",
	"ProtectControlGroups":    "yes",
	"ProtectClock":            "yes",
	"ProtectHostname":         "yes",
	"RestrictNamespaces":      "yes",
	"RestrictRealtime":        "yes",
	"RestrictSUIDSGID":        "yes",
	"LockPersonality":         "yes",
	"MemoryDenyWriteExecute":  "yes",
	"RemoveIPC":               "yes",
	"SystemCallArchitectures": "native",
	"SystemCallErrorNumber":   "EPERM",
	"KillSignal":              "SIGTERM",
}

func checkUnitHardening(t *testing.T, u systemdUnit) {
	t.Helper()
	for k, want := range hardening {
		if got, _ := u.last("Service", k); got != want {
			t.Errorf("[Service] %s=%q, want %q", k, got, want)
		}
	}
	if _, dynamic := u.last("Service", "DynamicUser"); dynamic {
		t.Error("DynamicUser: both units share /var/lib/devicegate on one host, so they run as the static user")
	}
	if got := u.words("Service", "RestrictAddressFamilies"); !slices.Equal(got, []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies=%v, want AF_INET AF_INET6 AF_UNIX", got)
	}
	filters := u[("Service")]["SystemCallFilter"]
	if len(filters) == 0 || filters[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%v: want an allow-list starting with @system-service", filters)
	}
	if !slices.Contains(filters, "~@privileged @resources") {
		t.Errorf("SystemCallFilter=%v: want ~@privileged @resources denied", filters)
	}
	caps := u.words("Service", "CapabilityBoundingSet")
	if !slices.Equal(caps, u.words("Service", "AmbientCapabilities")) {
		t.Errorf("CapabilityBoundingSet %v and AmbientCapabilities %v differ", caps, u.words("Service", "AmbientCapabilities"))
	}
	if len(caps) > 1 || (len(caps) == 1 && caps[0] != "CAP_NET_BIND_SERVICE") {
		t.Errorf("CapabilityBoundingSet=%v: at most CAP_NET_BIND_SERVICE", caps)
	}
	if _, set := u.last("Service", "CapabilityBoundingSet"); !set {
		t.Error("CapabilityBoundingSet is not set (the default keeps every capability)")
	}
	if got, _ := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q", got)
	}
}

// checkUnitCommands: ExecStartPre runs check-config on the config and
// ExecStart runs the role with --config, both flags and commands existing.
func checkUnitCommands(t *testing.T, u systemdUnit, role string) {
	t.Helper()
	pre, _ := u.last("Service", "ExecStartPre")
	if got, want := strings.Fields(pre), []string{unitBinary, "check-config", unitConfig}; !slices.Equal(got, want) {
		t.Errorf("ExecStartPre=%q, want %q", pre, strings.Join(want, " "))
	}
	start, _ := u.last("Service", "ExecStart")
	args := strings.Fields(start)
	if len(args) != 4 || args[0] != unitBinary || args[1] != role || args[2] != "--config" || args[3] != unitConfig {
		t.Fatalf("ExecStart=%q, want %s %s --config %s", start, unitBinary, role, unitConfig)
	}
	for _, cmd := range []string{"check-config", role} {
		if _, ok := findCommand(commands(), cmd); !ok {
			t.Errorf("%q is not a devicegate command", cmd)
		}
	}
	// The flag exists: the command's own help lists it.
	var out, errb bytes.Buffer
	run(context.Background(), []string{role, "--help"}, strings.NewReader(""), &out, &errb)
	if !strings.Contains(out.String()+errb.String(), "-config") {
		t.Errorf("devicegate %s --help does not list -config:\n%s%s", role, out.String(), errb.String())
	}
}

// checkUnitConfig loads an example config the unit reads and checks it
// against the unit's sandbox and capabilities.
func checkUnitConfig(t *testing.T, u systemdUnit, role, path string) {
	t.Helper()
	name := filepath.Base(path)
	if err := config.CheckFile(path); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	state, _ := u.last("Service", "StateDirectory")
	stateDir := "/var/lib/" + state
	if c.DataDir != stateDir {
		t.Errorf("%s: data_dir %s, want the unit's StateDirectory %s", name, c.DataDir, stateDir)
	}
	inside := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	// Written by devicegate: only the state directory is writable.
	writes := map[string]string{"ca.dir": c.CA.Dir, "ca.crl_file": c.CA.CRLFile, "proxy.snapshot_file": c.Proxy.SnapshotFile,
		"database.seal_key_file": c.Database.SealKeyFile}
	if c.Database.Driver == "sqlite" {
		writes["database.path"] = c.Database.Path
	}
	for k, p := range writes {
		if p != "" && !inside(p, stateDir) {
			t.Errorf("%s: %s %s is outside %s, read-only under ProtectSystem=strict", name, k, p, stateDir)
		}
	}
	// Read by devicegate: the config directory or the state directory.
	reads := map[string]string{"tls.cert_file": c.TLS.CertFile, "tls.key_file": c.TLS.KeyFile,
		"tls.acme.ca_root_file": c.TLS.ACME.CARootFile, "permissions_file": c.PermissionsFile}
	if c.Database.Driver == "postgres" {
		dsn, err := url.Parse(c.Database.DSN)
		if err != nil {
			t.Fatalf("%s: database.dsn: %v", name, err)
		}
		if dsn.User != nil {
			if _, hasPW := dsn.User.Password(); hasPW {
				t.Errorf("%s: a password in the DSN: use the passfile", name)
			}
		}
		reads["dsn passfile"] = dsn.Query().Get("passfile")
		if reads["dsn passfile"] == "" {
			t.Errorf("%s: the DSN names no passfile", name)
		}
	}
	for _, up := range c.Proxy.Upstreams {
		reads["binding.hmac_key_file"] = up.Binding.HMACKeyFile
		reads["binding.jwt_key_file"] = up.Binding.JWTKeyFile
	}
	for k, p := range reads {
		if p != "" && !inside(p, unitConfigDir) && !inside(p, stateDir) {
			t.Errorf("%s: %s %s is neither in %s nor in %s", name, k, p, unitConfigDir, stateDir)
		}
		if inside(p, "/home") || inside(p, "/root") || inside(p, "/tmp") {
			t.Errorf("%s: %s %s is hidden by ProtectHome/PrivateTmp", name, k, p)
		}
	}
	// The role's listeners; a privileged port needs the capability, and a
	// unit whose configs bind none must not hold it.
	var listens []string
	switch role {
	case "serve":
		if c.CA.Listen == "" || c.Portal.Listen == "" {
			t.Errorf("%s: serve needs ca.listen and portal.listen", name)
		}
		listens = []string{c.CA.Listen, c.Portal.Listen}
	case "proxy":
		if len(c.Proxy.Upstreams) == 0 {
			t.Errorf("%s: proxy.upstreams is empty: devicegate proxy refuses to start", name)
		}
		listens = []string{c.Proxy.Listen, c.Proxy.AdminListen}
	}
	low := false
	for _, l := range listens {
		_, port, err := net.SplitHostPort(l)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			t.Errorf("%s: listener %q", name, l)
			continue
		}
		low = low || (n > 0 && n < 1024)
	}
	caps := u.words("Service", "AmbientCapabilities")
	if low && !slices.Contains(caps, "CAP_NET_BIND_SERVICE") {
		t.Errorf("%s: %s listens on %v below 1024 without CAP_NET_BIND_SERVICE", name, role, listens)
	}
	if !low && len(caps) > 0 {
		t.Errorf("%s: %s listens on %v and needs no capability, the unit holds %v", name, role, listens, caps)
	}
}

// checkSysusers: the user exists (sysusers.d) before the units start, with
// the config directory readable by its group only (tmpfiles.d).
func checkSysusers(t *testing.T, dir, ops string) {
	t.Helper()
	lines := func(name string) [][]string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ops, "configs/systemd/"+name) {
			t.Errorf("docs/operations.md does not install configs/systemd/%s", name)
		}
		var out [][]string
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
				out = append(out, f)
			}
		}
		return out
	}
	users := lines("devicegate.sysusers")
	if len(users) != 1 || users[0][0] != "u" || users[0][1] != unitUser {
		t.Errorf("devicegate.sysusers: %v, want one line `u %s ...`", users, unitUser)
	}
	dirs := lines("devicegate.tmpfiles")
	if len(dirs) != 1 || !slices.Equal(dirs[0][:5], []string{"d", unitConfigDir, "0750", "root", unitUser}) {
		t.Errorf("devicegate.tmpfiles: %v, want `d %s 0750 root %s`", dirs, unitConfigDir, unitUser)
	}
}

// verifyUnits runs `systemd-analyze verify` on copies of the units whose
// binary path names an executable that exists here; any complaint fails.
// Without systemd (no /lib/systemd/systemd) this part is skipped, also
// under CI=true; with systemd installed a missing systemd-analyze fails.
func verifyUnits(t *testing.T, units []string) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if _, serr := os.Stat("/lib/systemd/systemd"); serr == nil {
			t.Fatalf("systemd is installed but systemd-analyze is not on PATH: %v", err)
		}
		t.Skip("systemd is not installed: systemd-analyze verify not run")
	}
	exe, err := os.Executable() // any executable file: verify checks the path
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var copies []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(tmp, filepath.Base(u))
		if err := os.WriteFile(to, bytes.ReplaceAll(data, []byte(unitBinary), []byte(exe)), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, to)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, copies...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
