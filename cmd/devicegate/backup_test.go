package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestBackupRestore follows docs/operations.md "Backup and restore" on
// SQLite and on PostgreSQL, with the real proxy (`devicegate proxy`) and
// the admin CLI:
//   - back up while everything runs: the database (SQLite: VACUUM INTO;
//     PostgreSQL: pg_dump -Fc) and the CA directory with the seal key;
//   - after the backup, revoke a device (d2), enroll one (d5), enroll and
//     revoke one (d6); save the newest CRL (ca/crl.pem), stop the proxy;
//   - destroy the database, the CA directory and the seal key; restore
//     them from the backup (the proxy's own snapshot, newer than the
//     backup, stays: it lives on the proxy's host);
//   - the proxy notices the database went back and reloads everything:
//     the devices of the backup pass (d1, d3), the one revoked before it
//     is refused (d4), and so is d5, which the restored database does not
//     know; d2 passes again: the revocation made after the backup is lost;
//   - `admin device revoke-from-crl` with the saved CRL re-applies it (d2
//     refused again), reports d6's serial as unknown (exit 1), changes
//     nothing when the CRL is not this CA's, and a second run applies
//     nothing; the CA issues again (d7 passes), the restored CA's CRL
//     lists d2 and d4, and the audit chain verifies.
func TestBackupRestore(t *testing.T) {
	bin := buildBinary(t)
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) { testBackupRestore(t, bin, driver) })
	}
}

// backupDB is one store's backup, destroy and restore.
type backupDB struct {
	backup, destroy, restore func(t *testing.T)
}

func testBackupRestore(t *testing.T, bin, driver string) {
	began := time.Now()
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "node", "data")
	saved := filepath.Join(dir, "backup") // what the operator keeps elsewhere
	if err := os.MkdirAll(saved, 0o700); err != nil {
		t.Fatal(err)
	}
	dbConf := "{driver: sqlite}"
	var db backupDB
	switch driver {
	case "sqlite":
		db = sqliteBackup(filepath.Join(data, "devicegate.db"), filepath.Join(saved, "devicegate.db"))
	case "postgres":
		pg := pgtest.Start(t)
		dsn := pg.NewDatabase(t)
		dbConf = fmt.Sprintf("{driver: postgres, dsn: %q}", dsn)
		db = postgresBackup(dsn, filepath.Join(saved, "devicegate.dump"))
	}

	hash, err := secrets.HashPassword("kim-backoffice-pw")
	if err != nil {
		t.Fatal(err)
	}
	bo := newBackofficeServer(t, hash)
	cfg := filepath.Join(dir, "node", "devicegate.yaml")
	conf := fmt.Sprintf(`data_dir: data
log: {level: warn}
database: %s
ca: {listen: 127.0.0.1:0}
portal: {listen: 127.0.0.1:0}
proxy:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  max_staleness: 3s
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
`, dbConf, bo, bo+"/whoami")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "check-config", cfg)

	a, shop, kim := protectedShop(t, cfg, "finance", 5)
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Keys().Root)
	type device struct {
		c          *http.Client
		id, serial string
	}
	issue := func() device {
		c, id := faultDevice(t, ctx, a.ca, shop.ID, kim.ID, roots)
		dev, err := a.store.GetDevice(ctx, shop.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return device{c, id, dev.Serial}
	}
	d1, d2, d3, d4 := issue(), issue(), issue(), issue()
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", d4.id, "--reason", "keyCompromise")

	proxyLog := filepath.Join(dir, "proxy.log")
	px := startProc(t, bin, proxyLog, []string{"proxy_url"}, "proxy", "--config", cfg)
	expect := func(what string, want map[string]device, refused map[string]device) {
		t.Helper()
		for name, d := range want {
			waitWhoami(t, what+": "+name, d.c, px.urls["proxy_url"], "ok", 15*time.Second)
		}
		for name, d := range refused {
			waitWhoami(t, what+": "+name, d.c, px.urls["proxy_url"], "device_not_active", 15*time.Second)
		}
	}
	expect("before the backup", map[string]device{"d1": d1, "d2": d2, "d3": d3}, map[string]device{"d4": d4})

	// The backup, online: the proxy and the in-process CA keep running.
	db.backup(t)
	copyTree(t, filepath.Join(data, "ca"), filepath.Join(saved, "ca"))
	copyTree(t, filepath.Join(data, "seal.key"), filepath.Join(saved, "seal.key"))

	// After the backup: what the restore loses.
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", d2.id, "--reason", "keyCompromise")
	d5, d6 := issue(), issue()
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", d6.id)
	expect("after the backup", map[string]device{"d1": d1, "d3": d3, "d5": d5}, map[string]device{"d2": d2, "d4": d4, "d6": d6})
	// The newest CRL, saved before the restore replaces the CA directory.
	copyTree(t, filepath.Join(data, "ca", "crl.pem"), filepath.Join(dir, "saved-crl.pem"))
	seq, err := a.store.CurrentSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotFile(t, filepath.Join(data, "proxy-snapshot.json"), seq) // the proxy's state is as new as it gets
	px.kill()
	a.Close()

	// Lost: the database, the CA directory, the seal key.
	db.destroy(t)
	for _, p := range []string{filepath.Join(data, "ca"), filepath.Join(data, "seal.key")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	db.restore(t)
	copyTree(t, filepath.Join(saved, "ca"), filepath.Join(data, "ca"))
	copyTree(t, filepath.Join(saved, "seal.key"), filepath.Join(data, "seal.key"))
	mustCLI(t, "check-config", cfg)

	px = startProc(t, bin, proxyLog, []string{"proxy_url"}, "proxy", "--config", cfg)
	// d5 is refused only once the proxy dropped its newer snapshot.
	expect("restored", map[string]device{"d1": d1, "d2 (revoked after the backup: lost)": d2, "d3": d3},
		map[string]device{"d4": d4, "d5 (unknown to the backup)": d5, "d6": d6})
	if log, _ := os.ReadFile(proxyLog); !strings.Contains(string(log), "change sequence went back") {
		t.Errorf("the proxy did not log that the database went back:\n%s", tail(log))
	}

	// A CRL that is not this CA's changes nothing.
	foreign := foreignCRL(t, d1.serial)
	if code, out, errOut := cli(t, "admin", "--config", cfg, "device", "revoke-from-crl", foreign); code == 0 || !strings.Contains(errOut, "not signed by this CA") {
		t.Fatalf("revoke-from-crl with another CA's CRL: exit %d\n%s%s", code, out, errOut)
	}
	// The saved CRL: d2 revoked again, d6 unknown (exit 1), d4 already.
	code, out, errOut := cli(t, "admin", "--config", cfg, "device", "revoke-from-crl", filepath.Join(dir, "saved-crl.pem"))
	if code != 1 || !strings.Contains(out, "1 revocation(s) re-applied, 1 already in the database, 1 serial(s) unknown to it") ||
		!strings.Contains(out, "unknown serial "+d6.serial) || !strings.Contains(out, d2.id) {
		t.Fatalf("revoke-from-crl with the saved CRL: exit %d\n%s%s", code, out, errOut)
	}
	if _, out, _ = cli(t, "admin", "--config", cfg, "device", "revoke-from-crl", filepath.Join(dir, "saved-crl.pem")); !strings.Contains(out, "0 revocation(s) re-applied, 2 already") {
		t.Fatalf("revoke-from-crl a second time:\n%s", out)
	}

	a, err = openApp(ctx, cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	d7 := issue()
	expect("after revoke-from-crl", map[string]device{"d1": d1, "d3": d3, "d7 (issued after the restore)": d7},
		map[string]device{"d2": d2, "d4": d4, "d5": d5, "d6": d6})
	crl := parseCRLFile(t, filepath.Join(data, "ca", "crl.pem"))
	for name, d := range map[string]device{"d2": d2, "d4": d4} {
		if !crl[d.serial] {
			t.Errorf("the restored CA's CRL does not list %s", name)
		}
	}
	mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop")
	t.Logf("%s: backup, destroy, restore, revoke-from-crl and the proxy checks in %v", driver, time.Since(began).Round(time.Millisecond))
}

// newBackofficeServer runs the demo app with shop:kim as its one user.
func newBackofficeServer(t *testing.T, hash string) string {
	t.Helper()
	srv := httptest.NewServer(backoffice.New([]backoffice.User{{Name: "shop:kim", PasswordHash: hash}}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// sqliteBackup: VACUUM INTO writes a consistent copy of the live database
// (other connections keep reading and writing); the restore puts the copy
// where the database was, with the WAL files of the lost one gone.
func sqliteBackup(live, copyTo string) backupDB {
	return backupDB{
		backup: func(t *testing.T) {
			conn, err := sql.Open("sqlite", "file:"+live)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Exec(`VACUUM INTO ?`, copyTo); err != nil {
				t.Fatalf("VACUUM INTO: %v", err)
			}
		},
		destroy: func(t *testing.T) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(live + suffix); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
		},
		restore: func(t *testing.T) { copyTree(t, copyTo, live) },
	}
}

// postgresBackup: pg_dump's custom format of the live database; the
// restore drops it and loads the dump into a new, empty one.
func postgresBackup(dsn, dump string) backupDB {
	u, _ := url.Parse(dsn)
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	exec1 := func(t *testing.T, stmt string) {
		conn, err := sql.Open("pgx", admin.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return backupDB{
		backup: func(t *testing.T) {
			runTool(t, pgTool(t, "pg_dump"), "--format=custom", "--file="+dump, "--dbname="+dsn)
		},
		destroy: func(t *testing.T) { exec1(t, "DROP DATABASE "+name+" WITH (FORCE)") },
		restore: func(t *testing.T) {
			exec1(t, "CREATE DATABASE "+name)
			runTool(t, pgTool(t, "pg_restore"), "--exit-on-error", "--no-owner", "--dbname="+dsn, dump)
		},
	}
}

// pgTool is a PostgreSQL client program of the newest installed version
// (the tests' server is the newest too: pg_dump must not be older).
func pgTool(t *testing.T, name string) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi > vj
	})
	if len(found) == 0 {
		t.Fatalf("%s not found in /usr/lib/postgresql/*/bin", name)
	}
	return found[0]
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(name), err, out)
	}
}

// copyTree copies a file or a directory with the files' modes, as
// `cp -a` or `tar -p` does (the CA refuses keys others could read).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// foreignCRL writes a CRL of another CA that revokes serial.
func foreignCRL(t *testing.T, serial string) string {
	t.Helper()
	pki := testpki.New(t)
	sn, _ := new(big.Int).SetString(serial, 16)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: sn, RevocationTime: time.Now()}}}, pki.Intermediate, pki.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "foreign-crl.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// parseCRLFile returns the serials (hex) the first CRL of a PEM file lists.
func parseCRLFile(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.Text(16)] = true
	}
	return out
}
