package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"

	"github.com/devicegate/devicegate/store"
)

// Group commit: write transactions of this process queue up, and whoever
// takes the leader slot runs every queued transaction function in ONE
// database transaction, first without savepoints; if a function fails, the
// batch is rolled back and run again with each function inside its own
// savepoint: a function that fails is rolled back alone, exactly as if it
// had run in a transaction of its own, and every caller returns only after
// the shared commit. The commit's cost (WAL flush, locks, syscalls) is paid
// once per batch instead of once per call.
//
// SQLite has one writer, so its transactions queue anyway. On PostgreSQL
// every write bumps the one policy seq row and appends to its store's
// audit chain, and holds both locks through its commit's WAL flush: one
// flush at a time for all writers. A batch takes them once per batch.
//
// The audit events of a batch's functions are appended at the end, per
// store in id order, with one head read and one write per store (the head
// is then locked only for the last statements). Statements run without
// their caller's cancellation: a caller that goes away (a client hanging
// up) must not abort the transaction the others share; it still waits for
// the batch's end. If the batch fails before its commit (the connection
// broke, the audit append failed), nothing of it is written and each
// function runs again alone, so one bad call does not fail the others;
// a function that lost a deadlock or a serialization conflict (PostgreSQL,
// e.g. against another node's batch that locks sub-accounts in another
// order) runs again alone too.

// maxBatch bounds how many queued transactions share one commit (on
// PostgreSQL every savepoint that writes holds a subtransaction id, and a
// backend caches 64 of them).
const maxBatch = 48

// maxAloneTries bounds the runs of one function alone after a retryable
// failure.
const maxAloneTries = 5

type writeOp struct {
	ctx   context.Context
	fn    func(*txn) error
	err   error
	audit []store.AuditRecord // this op's audit events, appended at the batch's end
	alone bool                // run it again in a transaction of its own
	done  chan struct{}
}

// inGroupTx queues fn and runs queued functions in batches. The caller
// either becomes the leader (takes the leader slot) or is finished by one.
func (s *DB) inGroupTx(ctx context.Context, fn func(*txn) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.pending.Add(1)
	defer s.pending.Add(-1)
	s.queueMu.Lock()
	s.queue = append(s.queue, op)
	s.queueMu.Unlock()
	for {
		select {
		case <-op.done:
			if op.alone {
				return s.inTxAlone(ctx, fn)
			}
			return op.err
		case s.leader <- struct{}{}:
			if batch := s.takeQueued(maxBatch); len(batch) > 0 {
				s.runBatch(batch)
			}
			<-s.leader
		}
	}
}

// takeQueued takes up to n queued ops off the queue.
func (s *DB) takeQueued(n int) []*writeOp {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	n = min(len(s.queue), n)
	batch := s.queue[:n:n]
	s.queue = append([]*writeOp(nil), s.queue[n:]...)
	return batch
}

// inTxAlone runs fn in a transaction of its own (its audit written at
// once), again after a deadlock or serialization failure.
func (s *DB) inTxAlone(ctx context.Context, fn func(*txn) error) error {
	var err error
	for range maxAloneTries {
		if err = s.inPlainTx(ctx, fn); err == nil || !s.retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (s *DB) retryable(err error) bool {
	return s.d.IsRetryable != nil && s.d.IsRetryable(err)
}

// runBatch executes a batch in one transaction and finishes every op.
func (s *DB) runBatch(batch []*writeOp) {
	finish := func(err error) {
		for _, op := range batch {
			if op.err == nil && !op.alone {
				op.err = err
			}
			close(op.done)
		}
	}
	// Before the commit nothing is written: every op not finished by its
	// own error runs again alone.
	again := func() {
		for _, op := range batch {
			if op.err == nil || s.retryable(op.err) {
				op.err, op.alone = nil, op.ctx.Err() == nil
				if !op.alone {
					op.err = op.ctx.Err()
				}
			}
			close(op.done)
		}
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		again()
		return
	}
	done := s.runOpsOptimistic(ctx, tx, batch)
	// Ops queued while the batch ran join it before its commit (they would
	// wait for the commit anyway): BEGIN, the audit head and the commit's
	// flush are shared by more ops.
	for done && len(batch) < maxBatch {
		more := s.takeQueued(maxBatch - len(batch))
		if len(more) == 0 {
			break
		}
		batch = append(batch, more...)
		done = s.runOpsOptimistic(ctx, tx, more)
	}
	if !done {
		_ = tx.Rollback()
		if len(batch) == 1 { // its own error stands, as in a transaction of its own
			again()
			return
		}
		// Without savepoints the failed op's writes cannot be undone
		// alone: start over with a savepoint per op.
		for _, op := range batch {
			op.err, op.audit = nil, nil
		}
		if tx, err = s.db.BeginTx(ctx, nil); err != nil {
			again()
			return
		}
		if !s.runOps(ctx, tx, batch) {
			_ = tx.Rollback()
			again()
			return
		}
	}
	if err := s.appendBatchAudit(ctx, &txn{s: s, tx: tx}, batch); err != nil {
		_ = tx.Rollback()
		again()
		return
	}
	err = tx.Commit()
	if err != nil {
		err = fmt.Errorf("group commit: %w", err)
	}
	finish(err)
}

// runOpsOptimistic runs the ops in tx without savepoints and reports
// whether all of them succeeded (ops whose caller has gone are skipped).
// Savepoints cost two statements per op, and on PostgreSQL each op's row
// locks then belong to a subtransaction: a row that several ops lock (the
// store's audit head, a foreign key's target) becomes a MultiXact that
// grows with every op. When an op fails, the caller rolls tx back and runs
// the batch again with runOps, so a failed op still leaves no trace and
// the others are unaffected.
func (s *DB) runOpsOptimistic(ctx context.Context, tx *sql.Tx, batch []*writeOp) bool {
	for _, op := range batch {
		if op.err = op.ctx.Err(); op.err != nil {
			continue
		}
		if op.err = op.fn(&txn{s: s, tx: tx, op: op}); op.err != nil {
			return false
		}
	}
	return true
}

// runOps runs each op of the batch in tx, in a savepoint of its own. It
// reports false when tx is lost.
func (s *DB) runOps(ctx context.Context, tx *sql.Tx, batch []*writeOp) bool {
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			continue
		}
		sp := "op" + strconv.Itoa(i) // at most maxBatch distinct, cached statements
		t := &txn{s: s, tx: tx, op: op}
		if _, err := t.ExecContext(ctx, "SAVEPOINT "+sp); err != nil {
			return false
		}
		if err := op.fn(t); err != nil {
			op.err, op.audit = err, nil
			if _, err := t.ExecContext(ctx, "ROLLBACK TO "+sp); err != nil {
				return false // the transaction is in an unknown state
			}
			if s.retryable(op.err) {
				op.err, op.alone = nil, true
			}
		}
		// PostgreSQL keeps a released savepoint's subtransaction until the
		// commit anyway, so only SQLite releases (its savepoints nest).
		if !s.d.KeepSavepoints {
			if _, err := t.ExecContext(ctx, "RELEASE "+sp); err != nil {
				return false
			}
		}
	}
	return true
}

// appendBatchAudit appends the audit events of the batch's successful ops,
// store by store in id order (a fixed lock order), each store's events in
// the order of the ops.
func (s *DB) appendBatchAudit(ctx context.Context, tx *txn, batch []*writeOp) error {
	byTenant := map[string][]store.AuditEntry{}
	for _, op := range batch {
		if op.err != nil || op.alone {
			continue
		}
		for _, r := range op.audit {
			byTenant[r.TenantID] = append(byTenant[r.TenantID], r.Entry)
		}
	}
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		if _, err := s.appendAuditChain(ctx, tx, t, byTenant[t]); err != nil {
			return fmt.Errorf("audit of store %s: %w", t, err)
		}
	}
	return nil
}
