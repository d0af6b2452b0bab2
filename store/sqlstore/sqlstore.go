// Package sqlstore is the one implementation of store.Store over
// database/sql, shared by the SQLite and PostgreSQL backends, which differ
// only in a small Dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Dialect is what differs between the backends.
type Dialect struct {
	Name string
	// Numbered placeholders ($1) instead of '?'.
	DollarPlaceholders bool
	// ForUpdate is appended to SELECTs that lock a row inside a transaction
	// ("" for SQLite, whose write transactions lock the whole database).
	ForUpdate string
	// IsUniqueViolation recognizes a unique-constraint error.
	IsUniqueViolation func(error) bool
	// Migrations holds NNN_name.sql files applied in order.
	Migrations fs.FS
	// MigrationLock, if set, runs inside the migration transaction first
	// (PostgreSQL: an advisory lock, so nodes starting together agree).
	MigrationLock string
}

// DB implements store.Store.
type DB struct {
	db      *sql.DB
	d       Dialect
	sealer  *sealer
	queries sync.Map // raw query -> rebound query
}

var _ store.Store = (*DB)(nil)

// New migrates db and returns the store. It takes ownership of db.
func New(ctx context.Context, db *sql.DB, d Dialect, opts store.Options) (*DB, error) {
	s, err := newSealer(opts.SealKey)
	if err != nil {
		return nil, err
	}
	st := &DB{db: db, d: d, sealer: s}
	if err := st.migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", d.Name, err)
	}
	return st, nil
}

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

// SQL returns the underlying handle (backend tests inspect raw rows).
func (s *DB) SQL() *sql.DB { return s.db }

// Rebind rewrites '?' placeholders for this backend (for raw-SQL tests).
func (s *DB) Rebind(query string) string { return s.q(query) }

// q rewrites '?' placeholders for the dialect (cached per query text).
func (s *DB) q(query string) string {
	if !s.d.DollarPlaceholders {
		return query
	}
	if v, ok := s.queries.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	s.queries.Store(query, b.String())
	return b.String()
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction; any error rolls everything back.
func (s *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Times are stored as UTC microseconds since the epoch; 0 is the zero time.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromTS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// notFound maps sql.ErrNoRows to store.ErrNotFound with context.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return err
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, args...))
}

// nextSeq bumps the global policy sequence inside tx. The single row is
// locked until commit, so seq order equals commit order.
func (s *DB) nextSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, s.q(`UPDATE policy_seq SET v = v + 1 WHERE id = 1 RETURNING v`)).Scan(&v)
	return v, err
}

// CurrentSeq returns the newest committed policy seq.
func (s *DB) CurrentSeq(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT v FROM policy_seq WHERE id = 1`)).Scan(&v)
	return v, err
}
