package sqlstore

import (
	"context"
	"fmt"
	"strconv"
)

// Group commit (SQLite): the database has one writer, so write transactions
// of this process queue up anyway. Whoever holds the write lock runs every
// queued transaction function in ONE database transaction, each inside its
// own savepoint: a function that fails is rolled back alone, exactly as if
// it had run in a transaction of its own, and every caller returns only
// after the shared commit. The commit's cost (WAL frames, locks, syscalls)
// is paid once per batch instead of once per call.

// A caller whose context ends while its statements run can make SQLite
// abandon the whole transaction; then the commit fails and every caller of
// the batch gets the error: nothing is half-written, some retries are owed.

// maxBatch bounds how many queued transactions share one commit.
const maxBatch = 64

type writeOp struct {
	ctx  context.Context
	fn   func(*txn) error
	err  error
	done chan struct{}
}

// inGroupTx queues fn and runs queued functions in batches. The caller
// either becomes the leader (takes the leader slot) or is finished by one.
func (s *DB) inGroupTx(ctx context.Context, fn func(*txn) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.queueMu.Lock()
	s.queue = append(s.queue, op)
	s.queueMu.Unlock()
	for {
		select {
		case <-op.done:
			return op.err
		case s.leader <- struct{}{}:
			s.queueMu.Lock()
			n := min(len(s.queue), maxBatch)
			batch := s.queue[:n:n]
			s.queue = append([]*writeOp(nil), s.queue[n:]...)
			s.queueMu.Unlock()
			if n > 0 {
				s.runBatch(batch)
			}
			<-s.leader
		}
	}
}

// runBatch executes a batch in one transaction and finishes every op.
func (s *DB) runBatch(batch []*writeOp) {
	finish := func(err error) {
		for _, op := range batch {
			if op.err == nil {
				op.err = err
			}
			close(op.done)
		}
	}
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		finish(err)
		return
	}
	t := &txn{s: s, tx: tx}
	if len(batch) == 1 { // nobody to share with: no savepoint needed
		op := batch[0]
		if op.err = op.fn(t); op.err != nil {
			_ = tx.Rollback()
			finish(nil)
			return
		}
		finish(tx.Commit())
		return
	}
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			continue
		}
		sp := "op" + strconv.Itoa(i) // at most maxBatch distinct, cached statements
		if _, err := t.ExecContext(op.ctx, "SAVEPOINT "+sp); err != nil {
			op.err = err
			continue
		}
		if err := op.fn(t); err != nil {
			op.err = err
			if _, rbErr := t.ExecContext(context.Background(), "ROLLBACK TO "+sp); rbErr != nil {
				// The transaction is in an unknown state: give up on all of it.
				_ = tx.Rollback()
				finish(fmt.Errorf("rollback to savepoint: %w", rbErr))
				return
			}
		}
		if _, err := t.ExecContext(context.Background(), "RELEASE "+sp); err != nil {
			_ = tx.Rollback()
			finish(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	finish(tx.Commit())
}
