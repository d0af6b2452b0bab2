package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// releaseMigrations is the last migration of the previous release: the
// schema on main before issue 12's work began (001..008). No git tags exist;
// released migration files never change, so applying these files is
// building that release's schema.
const releaseMigrations = 8

// TestUpgradeFromPreviousRelease builds a PostgreSQL database at the
// previous release's schema (migrations 001..008 applied as that release
// applied them, schema_migrations included), fills it with data as that
// release wrote it (a store, a protected sub-account, an active and a
// revoked device with its revocation, the policy seq), then starts two
// CA nodes of the current code (`devicegate serve`) at the same moment
// on it. Both come up; every current migration is recorded exactly once
// (a migration applied twice would fail its node: they add columns and
// tables); the data reads back through the current store as it was
// written: the device active with its serial, the revoked one revoked and
// on the CRL's list, the policy seq not gone back.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	began := time.Now()
	bin := buildBinary(t)
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()

	files, err := filepath.Glob(filepath.Join(repoRoot, "store", "postgres", "migrations", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var current []int
	for _, f := range files {
		n, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "_", 2)[0])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		current = append(current, n)
		if n > releaseMigrations {
			continue
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		stmts := append([]string{`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`}, strings.Split(string(body), ";\n")...)
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO schema_migrations (version) VALUES (%d)`, n))
		for _, s := range stmts {
			if strings.TrimSpace(s) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, s); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.ContainsFunc(current, func(n int) bool { return n > releaseMigrations }) {
		t.Logf("no migration after %03d yet: the upgrade applies nothing new", releaseMigrations)
	}

	// The release's data, as its store wrote it (times in microseconds).
	now := time.Now().Truncate(time.Second)
	us := func(t time.Time) int64 { return t.UnixMicro() }
	year := now.AddDate(1, 0, 0)
	for _, s := range []struct {
		q    string
		args []any
	}{
		{`INSERT INTO tenants (id, name, display_name, owner_password_hash, created_at) VALUES ('t-shop', 'shop', 'Shop', '', $1)`, []any{us(now)}},
		{`INSERT INTO sub_accounts (id, tenant_id, name, role, grants, status, password_hash, phone_enabled, protect_enabled, max_devices,
		  not_before, not_after, change_seq, created_at, updated_at) VALUES ('s-kim', 't-shop', 'kim', 'finance', '', 'active', '', 1, 1, 2, 0, 0, 1, $1, $1)`, []any{us(now)}},
		{`INSERT INTO devices (id, tenant_id, sub_id, label, serial, fingerprint, status, issued_at, expires_at, enrolled_ip, enrolled_ua,
		  last_seen_at, last_seen_ip, revoked_at, reason, change_seq, key_id) VALUES
		  ('d-1', 't-shop', 's-kim', 'front desk', 'a1', 'f1', 'active', $1, $2, '10.0.0.5', 'ua', 0, '', 0, 0, 2, 'k1'),
		  ('d-2', 't-shop', 's-kim', 'back office', 'a2', 'f2', 'revoked', $1, $2, '10.0.0.6', 'ua', 0, '', $1, 1, 3, 'k2')`, []any{us(now), us(year)}},
		{`INSERT INTO revocations (seq, serial, tenant_id, sub_id, device_id, reason, revoked_at, expires_at) VALUES (3, 'a2', 't-shop', 's-kim', 'd-2', 1, $1, $2)`, []any{us(now), us(year)}},
		{`UPDATE policy_seq SET v = 3`, nil},
	} {
		if _, err := db.ExecContext(ctx, s.q, s.args...); err != nil {
			t.Fatalf("%s: %v", s.q, err)
		}
	}

	// Two CA nodes of the current code, started together on it.
	dir := t.TempDir()
	var cfgs []string
	for i := range 2 {
		node := filepath.Join(dir, fmt.Sprintf("ca-%d", i+1))
		if err := os.MkdirAll(filepath.Join(node, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(node, "devicegate.yaml")
		conf := fmt.Sprintf("data_dir: data\nlog: {level: warn}\ndatabase: {driver: postgres, dsn: %q}\nca: {listen: 127.0.0.1:0}\nportal: {listen: 127.0.0.1:0}\n", dsn)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	// The CA directory and seal key made without touching the database
	// (ca init would migrate it), copied to the second node.
	if err := ca.Init(filepath.Join(dir, "ca-1", "data", "ca"), ca.InitOptions{Name: "devicegate"}); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join(dir, "ca-1", "data", "ca"), filepath.Join(dir, "ca-2", "data", "ca"))
	seal := []byte(strings.Repeat("ab", 32) + "\n")
	for i := range cfgs {
		if err := os.WriteFile(filepath.Join(filepath.Dir(cfgs[i]), "data", "seal.key"), seal, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startedAt := time.Now()
	waits := make([]func() string, len(cfgs))
	for i, cfg := range cfgs {
		waits[i] = startUnwaited(t, bin, filepath.Join(filepath.Dir(cfg), "node.log"), "ca_url", "serve", "--config", cfg)
	}
	for i, wait := range waits {
		if url := wait(); !strings.HasPrefix(url, "https://") {
			t.Fatalf("node %d: ca_url %q", i+1, url)
		}
	}
	t.Logf("both nodes up %v after they were started together", time.Since(startedAt).Round(time.Millisecond))

	rows, err := db.QueryContext(ctx, `SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var applied []int
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("migration %03d recorded %d times", v, n)
		}
		applied = append(applied, v)
	}
	rows.Close()
	if !slices.Equal(applied, current) {
		t.Fatalf("schema_migrations %v, want every current migration %v", applied, current)
	}

	a, err := openApp(ctx, cfgs[0], "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	shop, err := a.store.GetTenantByName(ctx, "shop")
	if err != nil || shop.ID != "t-shop" {
		t.Fatalf("store shop after the upgrade: %+v %v", shop, err)
	}
	kim, err := a.store.GetSubAccountByName(ctx, shop.ID, "kim")
	if err != nil || kim.ID != "s-kim" || kim.Status != store.StatusActive || !kim.Protection.Enabled || kim.Protection.MaxDevices != 2 {
		t.Fatalf("shop:kim after the upgrade: %+v %v", kim, err)
	}
	d1, err := a.store.GetDevice(ctx, shop.ID, "d-1")
	if err != nil || d1.Status != store.DeviceActive || d1.Serial != "a1" || d1.Label != "front desk" || !d1.ExpiresAt.Equal(year) {
		t.Fatalf("device d-1 after the upgrade: %+v %v", d1, err)
	}
	d2, err := a.store.GetDevice(ctx, shop.ID, "d-2")
	if err != nil || d2.Status != store.DeviceRevoked || d2.Serial != "a2" {
		t.Fatalf("device d-2 after the upgrade: %+v %v", d2, err)
	}
	revs, err := a.store.RevocationsForCRL(ctx, now)
	if err != nil || len(revs) != 1 || revs[0].Serial != "a2" {
		t.Fatalf("revocations after the upgrade: %+v %v", revs, err)
	}
	if seq, err := a.store.CurrentSeq(ctx); err != nil || seq < 3 {
		t.Fatalf("policy seq after the upgrade: %d %v, want >= 3", seq, err)
	}
	ch, err := a.store.PolicyChangesSince(ctx, 0)
	if err != nil || len(ch.Devices) != 1 || ch.Devices[0].ID != "d-1" {
		t.Fatalf("a proxy's first load after the upgrade: %+v %v", ch.Devices, err)
	}
	t.Logf("upgrade %03d -> %03d with two nodes at once: %v in all", releaseMigrations, current[len(current)-1], time.Since(began).Round(time.Millisecond))
}

// startUnwaited starts bin with args (stderr to logFile) and returns a
// function that waits up to 60 s for the process to print "key: value"
// and returns value; the process is killed when the test ends. Unlike
// startProc, starting does not wait, so several processes start together.
func startUnwaited(t *testing.T, bin, logFile, key string, args ...string) func() string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ": "); ok && k == key {
				found <- strings.TrimSpace(v)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return func() string {
		t.Helper()
		select {
		case v := <-found:
			return v
		case <-done:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("devicegate %s exited before printing %s:\n%s", strings.Join(args, " "), key, tail(log))
		case <-time.After(60 * time.Second):
			log, _ := os.ReadFile(logFile)
			t.Fatalf("devicegate %s did not print %s in 60 s:\n%s", strings.Join(args, " "), key, tail(log))
		}
		return ""
	}
}
