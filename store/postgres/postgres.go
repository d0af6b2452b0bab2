// Package postgres is the store for several nodes: PostgreSQL through pgx.
package postgres

import (
	"context"
	"embed"
	"errors"
	"io/fs"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects and migrates. Migrations take an advisory lock, so nodes
// starting together apply each one once. The quota gate locks the
// sub-account row with SELECT ... FOR NO KEY UPDATE: as strong against
// other writers of the row, but it lets foreign-key checks of rows that
// refer to it (or to its store, joined in the same SELECT) through, so an
// audit writer holding the store's audit head is not blocked by it while
// it waits for that head (a deadlock with FOR UPDATE).
func Open(ctx context.Context, dsn string, opts store.Options) (*sqlstore.DB, error) {
	if dsn == "" {
		return nil, errors.New("postgres: a DSN is required")
	}
	cfg, err := connConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	sub, _ := fs.Sub(migrations, "migrations")
	st, err := sqlstore.New(ctx, db, sqlstore.Dialect{
		Name:               "postgres",
		DollarPlaceholders: true,
		ForUpdate:          " FOR NO KEY UPDATE",
		IsUniqueViolation:  isUnique,
		Migrations:         sub,
		WritesInWith:       true,
		MigrationLock:      "SELECT pg_advisory_xact_lock(7418203366)",
		// pgx prepares and caches every statement per connection.
		DriverCachesStatements: true,
		// The seq bump and its notification in one statement: the seq row
		// is locked until commit, so every round trip after it is time
		// that every other writer waits.
		NextSeqSQL: `WITH s AS (UPDATE policy_seq SET v = v + 1 WHERE id = 1 RETURNING v)
			SELECT s.v FROM s, pg_notify('` + PolicyChannel + `', s.v::text)`,
		SeqCTE: `s AS (UPDATE policy_seq SET v = v + 1 WHERE id = 1 AND EXISTS (SELECT 1 FROM ok) RETURNING v),
			n AS (SELECT pg_notify('` + PolicyChannel + `', s.v::text) FROM s)`,
		ReportNotifySQL: "SELECT pg_notify('" + ReportChannel + "', ?)",
		// Every write takes the policy seq row and its store's audit head
		// and holds them through its commit's WAL flush: without batches,
		// one flush at a time for every writer of the database.
		GroupCommit:    true,
		KeepSavepoints: true,
		IsRetryable:    isRetryable,
	}, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

// isRetryable: a deadlock or a serialization failure, which running the
// transaction again may not meet.
func isRetryable(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && (e.Code == "40P01" || e.Code == "40001")
}

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}
