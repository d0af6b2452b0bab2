package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// standbyName is the standby's cluster_name, which its WAL receiver gives
// the primary as application_name, and which synchronous_standby_names names.
const standbyName = "standby1"

// Replicated is a primary and a streaming-replication standby of it (made
// with pg_basebackup -R) on another loopback port, set up as
// docs/operations.md ("PostgreSQL failover") asks: the primary acknowledges
// a commit only once the standby has it (synchronous_standby_names names
// the standby, synchronous_commit = on), so promoting the standby loses no
// acknowledged commit.
type Replicated struct {
	Primary, Standby *Server
}

// StartReplicated starts the primary (as Start does), makes and starts its
// standby, and waits until the standby streams synchronously. Both stop
// when tb ends.
func StartReplicated(tb testing.TB) *Replicated {
	tb.Helper()
	p := Start(tb)
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	data := filepath.Join(p.dir, "standby")
	// The copy is taken before the primary names its synchronous standby:
	// the standby, once promoted, must not wait for a standby of its own.
	if err := p.run("pg_basebackup", "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "postgres",
		"-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		tb.Fatal(err)
	}
	sb := &Server{port: port, data: data, opts: serverOpts(port, p.dir) + " -c cluster_name=" + standbyName,
		log: filepath.Join(p.dir, "standby.log"), run: p.run, dir: p.dir, ctl: p.ctl, pgctl: p.pgctl}
	if err := guardAdd(p.pgctl, "stop", data); err != nil {
		tb.Fatal(err)
	}
	if err := sb.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sb.ctl("-D", data, "-m", "immediate", "-w", "stop") })
	tb.Cleanup(func() {
		if tb.Failed() { // what the servers said (deadlocks, replication) helps
			for name, log := range map[string]string{"primary": p.log, "standby": sb.log} {
				b, _ := os.ReadFile(log)
				tb.Logf("PostgreSQL %s log (end):\n%s", name, b[max(0, len(b)-6000):])
			}
		}
	})

	admin, err := sql.Open("pgx", p.dsn("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, q := range []string{
		"ALTER SYSTEM SET synchronous_standby_names = '" + standbyName + "'",
		"SELECT pg_reload_conf()",
		// The servers run with -c synchronous_commit=off (fast tests); a
		// role setting overrides the command line. It is replicated, so
		// the promoted standby commits durably as well.
		"ALTER ROLE postgres SET synchronous_commit = on",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	for {
		var state string
		err := admin.QueryRowContext(ctx, `SELECT sync_state FROM pg_stat_replication WHERE application_name = $1`, standbyName).Scan(&state)
		if err == nil && state == "sync" {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("the standby does not stream synchronously after 60 s (%q, %v)", state, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Replicated{Primary: p, Standby: sb}
}

// NewDatabase creates a fresh, empty database on the primary (the standby
// replays it) and returns a multi-host DSN naming both servers with
// target_session_attrs=read-write: a client connects to whichever of them
// accepts writes.
func (r *Replicated) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := r.Primary.createDatabase(tb)
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=5",
		r.Primary.port, r.Standby.port, name)
}

// Promote makes the standby a primary (pg_ctl promote) and returns once it
// accepts writes.
func (r *Replicated) Promote(tb testing.TB) {
	tb.Helper()
	if err := r.Standby.ctl("-D", r.Standby.data, "-w", "-t", "60", "promote"); err != nil {
		tb.Fatal(err)
	}
}
