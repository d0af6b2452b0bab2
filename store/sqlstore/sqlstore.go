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
	"sync/atomic"
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
	// NextSeqSQL, if set, replaces nextSeqSQL, the statement that bumps the
	// policy seq and returns the new value (PostgreSQL: the same UPDATE and
	// a pg_notify of the new seq, delivered on commit, in one round trip).
	NextSeqSQL string
	// SeqCTE, if set, is a WITH list whose CTEs s and n bump the policy seq
	// and notify it when the CTE ok, written before it, has a row: a write
	// that references (SELECT s.v FROM s, n) takes its seq in its own round
	// trip. With it, issuance runs in one statement, which also needs the
	// count functions of PostgreSQL's migration 013.
	SeqCTE string
	// WritesInWith: INSERT/UPDATE may run inside WITH of another write
	// (PostgreSQL), so two writes take one round trip.
	WritesInWith bool
	// ReportNotifySQL, if set, runs after every proxy report with the
	// proxy's name as its argument (PostgreSQL: pg_notify on ReportChannel).
	ReportNotifySQL string
	// GroupCommit queues this process's write transactions and commits them
	// in batches (see groupcommit.go).
	GroupCommit bool
	// KeepSavepoints: a batch does not release the savepoint of each of its
	// transactions (PostgreSQL keeps its subtransaction until the commit
	// anyway; the RELEASE would be a round trip for nothing).
	KeepSavepoints bool
	// IsRetryable recognizes a failure that running the transaction again
	// may cure (PostgreSQL: deadlock, serialization failure).
	IsRetryable func(error) bool
	// DriverCachesStatements: the driver prepares and caches statements
	// per connection by itself (pgx), so statements run as they are.
	// Preparing through database/sql inside a transaction takes a second
	// connection (the transaction holds its own): a CLI process dialed one
	// more connection for its revocation, and 16 concurrent transactions
	// each preparing a statement not yet cached waited for ever for a
	// 17th (storetest's PolicyChangesFollowed with 40 writers).
	DriverCachesStatements bool
}

// DB implements store.Store.
type DB struct {
	db      *sql.DB
	d       Dialect
	sealer  *sealer
	person  []byte        // HMAC key of person hashes (verification.go)
	queries sync.Map      // raw query -> rebound query
	stmts   sync.Map      // rebound query -> *sql.Stmt prepared on db
	leader  chan struct{} // capacity 1: the group-commit leader slot
	queueMu sync.Mutex
	queue   []*writeOp   // write transactions waiting for the next batch
	pending atomic.Int64 // write transactions in inGroupTx (tests wait on it)
	heads   sync.Map     // store id -> auditHead this process wrote last (audit.go)
}

var _ store.Store = (*DB)(nil)

// New migrates db and returns the store. It takes ownership of db.
func New(ctx context.Context, db *sql.DB, d Dialect, opts store.Options) (*DB, error) {
	s, err := newSealer(opts.SealKey)
	if err != nil {
		return nil, err
	}
	st := &DB{db: db, d: d, sealer: s, person: personKey(opts.SealKey), leader: make(chan struct{}, 1)}
	if err := st.migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", d.Name, err)
	}
	return st, nil
}

// Close closes the cached statements and the database.
func (s *DB) Close() error {
	s.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	return s.db.Close()
}

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
func (s *DB) inTx(ctx context.Context, fn func(tx *txn) error) error {
	if s.d.GroupCommit {
		return s.inGroupTx(ctx, fn)
	}
	return s.inPlainTx(ctx, fn)
}

// inPlainTx runs fn in a transaction of its own.
func (s *DB) inPlainTx(ctx context.Context, fn func(tx *txn) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&txn{s: s, tx: tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// txn runs statements through the prepared-statement cache, inside a
// transaction (tx set) or on the pool (tx nil). Preparing once matters:
// parsing SQL was a fifth of the CPU of an issuance.
type txn struct {
	s  *DB
	tx *sql.Tx
	op *writeOp // in a group commit: the op whose function runs
}

var _ querier = (*txn)(nil)

// ro runs reads on the pool with cached statements.
func (s *DB) ro() *txn { return &txn{s: s} }

// batchCtx is ctx without its cancellation inside a group commit: one
// caller going away must not abort the transaction the batch shares.
func (t *txn) batchCtx(ctx context.Context) context.Context {
	if t.op != nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// runner runs one statement: a *sql.Stmt, or direct.
type runner interface {
	ExecContext(ctx context.Context, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, args ...any) *sql.Row
}

// direct runs query on a transaction or the pool as it is, for a driver
// that caches statements itself (Dialect.DriverCachesStatements).
type direct struct {
	q     querier
	query string
}

func (d direct) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return d.q.ExecContext(ctx, d.query, args...)
}

func (d direct) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return d.q.QueryContext(ctx, d.query, args...)
}

func (d direct) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return d.q.QueryRowContext(ctx, d.query, args...)
}

func (t *txn) stmt(ctx context.Context, query string) (runner, error) {
	if t.s.d.DriverCachesStatements {
		if t.tx != nil {
			return direct{t.tx, query}, nil
		}
		return direct{t.s.db, query}, nil
	}
	v, ok := t.s.stmts.Load(query)
	if !ok {
		st, err := t.s.db.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		if v, ok = t.s.stmts.LoadOrStore(query, st); ok {
			st.Close()
		} else {
			v = st
		}
	}
	st := v.(*sql.Stmt)
	if t.tx != nil {
		return t.tx.StmtContext(ctx, st), nil
	}
	return st, nil
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.batchCtx(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.batchCtx(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.batchCtx(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		// Let the unprepared call report the same error through *sql.Row.
		if t.tx != nil {
			return t.tx.QueryRowContext(ctx, query, args...)
		}
		return t.s.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
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
func (s *DB) nextSeq(ctx context.Context, tx *txn) (int64, error) {
	query := nextSeqSQL
	if s.d.NextSeqSQL != "" {
		query = s.d.NextSeqSQL
	}
	var v int64
	err := tx.QueryRowContext(ctx, query).Scan(&v)
	return v, err
}

// nextSeqSQL bumps the policy seq and returns the new value.
const nextSeqSQL = `UPDATE policy_seq SET v = v + 1 WHERE id = 1 RETURNING v`

// CurrentSeq returns the newest committed policy seq.
func (s *DB) CurrentSeq(ctx context.Context) (int64, error) {
	var v int64
	err := s.ro().QueryRowContext(ctx, s.q(`SELECT v FROM policy_seq WHERE id = 1`)).Scan(&v)
	return v, err
}
