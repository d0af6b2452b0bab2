// Package pgtest starts a real, throwaway PostgreSQL server on loopback for
// tests and benchmarks (initdb + pg_ctl from Debian's postgresql package).
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// RequireEnv makes a missing PostgreSQL a failure instead of a skip (CI).
const RequireEnv = "DEVICEGATE_REQUIRE_POSTGRES"

// Server is one running PostgreSQL cluster.
type Server struct {
	port int
	dbs  atomic.Int64
	// ctl runs pg_ctl with args (as the postgres user when root); data,
	// opts and log are what Start used, so Crash and Restart reuse them.
	ctl             func(args ...string) error
	data, opts, log string
	// run runs one server binary (as the postgres user when root) and dir
	// is the cluster's temporary directory (sockets): a standby made by
	// StartReplicated uses both.
	run func(name string, args ...string) error
	dir string
	// pgctl is how pg_ctl runs (for the guard, guard.go).
	pgctl []string
}

// binDir finds the newest /usr/lib/postgresql/*/bin with initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (Debian package postgresql)")
}

// Start runs initdb and pg_ctl in a temporary directory and stops the
// server when tb ends. PostgreSQL refuses to run as root, so as root the
// binaries run as the "postgres" system user.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartReachable(tb, "", "")
}

// durableOpts put back what serverOpts turns off (the last setting wins):
// fsync, synchronous commit and full-page writes, as on a production server.
const durableOpts = " -c fsync=on -c synchronous_commit=on -c full_page_writes=on"

// StartDurable is Start with a crash-safe server (every commit flushed to
// disk before it is acknowledged, as in production): for benchmarks whose
// figures must include the durable commit.
func StartDurable(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, "", "", durableOpts)
}

// StartReachable is Start with the server also listening on addr (an
// address of this host, e.g. a test's veth end) and trusting clients from
// the network clients (CIDR) there; "" adds nothing. Partition tests reach
// it from another network namespace this way.
func StartReachable(tb testing.TB, addr, clients string) *Server {
	tb.Helper()
	return start(tb, addr, clients, "")
}

// start is StartReachable with extra postgres options appended.
func start(tb testing.TB, addr, clients, extraOpts string) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
	dir, err := os.MkdirTemp("", "devicegate-pg-*")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	runAs, err := runAsUser(dir)
	if err != nil {
		tb.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	argv := func(name string) []string {
		if runAs != nil {
			return []string{"runuser", "-u", runAs.Username, "--", filepath.Join(bin, name)}
		}
		return []string{filepath.Join(bin, name)}
	}
	if err := errors.Join(guardAdd(argv("pg_ctl"), "stop", data), guardAdd(argv("pg_ctl"), "rm", dir)); err != nil {
		tb.Fatal(err)
	}
	run := func(name string, args ...string) error {
		a := argv(name)
		cmd := exec.Command(a[0], append(a[1:], args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	if err := run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		tb.Fatal(err)
	}
	opts := serverOpts(port, dir) + extraOpts
	if addr != "" {
		hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = fmt.Fprintf(hba, "host all all %s trust\n", clients)
			err = errors.Join(err, hba.Close())
		}
		if err != nil {
			tb.Fatal(err)
		}
		opts += " -c listen_addresses=127.0.0.1," + addr // the last setting wins
	}
	s := &Server{port: port, data: data, opts: opts, log: filepath.Join(dir, "log"), run: run, dir: dir,
		ctl: func(args ...string) error { return run("pg_ctl", args...) }, pgctl: argv("pg_ctl")}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.ctl("-D", data, "-m", "immediate", "-w", "stop") })
	return s
}

// serverOpts are the postgres options of a test server on port with its
// sockets in dir: fast and not crash-safe (no fsync, asynchronous commit).
func serverOpts(port int, dir string) string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
}

func (s *Server) start() error {
	return s.ctl("-D", s.data, "-o", s.opts, "-l", s.log, "-w", "-t", "60", "start")
}

// Crash stops the server the way a crash does (pg_ctl stop -m immediate:
// no shutdown checkpoint, clients cut); Restart starts it again on the
// same data and port, with crash recovery.
func (s *Server) Crash(tb testing.TB) {
	tb.Helper()
	if err := s.ctl("-D", s.data, "-m", "immediate", "-w", "stop"); err != nil {
		tb.Fatal(err)
	}
}

// Restart starts a server stopped by Crash again.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// NewDatabase creates a fresh, empty database and returns its DSN.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	return s.dsn(s.createDatabase(tb))
}

// createDatabase creates a fresh, empty database and returns its name.
func (s *Server) createDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	admin, err := sql.Open("pgx", s.dsn("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return name
}

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// runAsUser returns the postgres user when running as root (and hands it the
// directory), or nil when the binaries can run as the current user.
func runAsUser(dir string) (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return u, os.Chmod(dir, 0o700)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
