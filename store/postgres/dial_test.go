package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// What a partition must not do to the database: hang a node's connection
// for minutes, or leave a vanished node's row locks held.
func TestPartitionSafeConnections(t *testing.T) {
	srv := pgtest.Start(t)
	t.Run("settings", func(t *testing.T) { t.Parallel(); testConnectionSettings(t, srv.NewDatabase(t)) })
	t.Run("abandoned transaction", func(t *testing.T) { t.Parallel(); testAbandonedTransaction(t, srv.NewDatabase(t)) })
}

// Every connection of a node gives up an unacknowledged peer after
// deadPeerAfter (Linux) and ends its own session when it sits idle in a
// transaction for abandonedTxAfter, unless the DSN sets it otherwise.
func testConnectionSettings(t *testing.T, dsn string) {
	tests := []struct {
		name, dsn, want string
	}{
		{"defaults", dsn, abandonedTxAfter},
		{"the DSN's setting wins", dsn + "&idle_in_transaction_session_timeout=60000", "1min"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := connConfig(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := pgx.ConnectConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var got string
			if err := conn.QueryRow(context.Background(), "SHOW idle_in_transaction_session_timeout").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("idle_in_transaction_session_timeout = %s, want %s", got, tc.want)
			}
			if runtime.GOOS != "linux" {
				return
			}
			raw, err := conn.PgConn().Conn().(interface {
				SyscallConn() (syscall.RawConn, error)
			}).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var ms int
			var serr error
			if err := raw.Control(func(fd uintptr) { ms, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			if time.Duration(ms)*time.Millisecond != deadPeerAfter {
				t.Errorf("TCP_USER_TIMEOUT = %d ms, want %v", ms, deadPeerAfter)
			}
		})
	}
}

// A node that vanishes in the middle of a transaction (its session left
// idle inside it) holds its row locks only until abandonedTxAfter; a
// transaction that ends normally is not touched.
func testAbandonedTransaction(t *testing.T, dsn string) {
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := Open(ctx, dsn, store.Options{SealKey: key}) // the schema
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, err := connConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)

	// The legitimate case: a transaction that ends normally.
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE policy_seq SET v = v WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("a transaction that ends normally: %v", err)
	}

	// The abandoned one: the row lock is taken, then nothing more comes.
	tx, err = holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE policy_seq SET v = v WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	other, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := other.ExecContext(wctx, "UPDATE policy_seq SET v = v WHERE id = 1"); err != nil {
		t.Fatalf("the row stayed locked by an abandoned transaction: %v", err)
	}
	t.Logf("abandoned lock released after %v", time.Since(began).Round(time.Millisecond))
	if err := tx.Commit(ctx); err == nil {
		t.Error("the abandoned transaction committed after its session was ended")
	}
}
