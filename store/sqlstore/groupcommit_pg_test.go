package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/sqlstore"
	"github.com/devicegate/devicegate/store/storetest"
)

// groupEnv is a PostgreSQL store with n sub-accounts of one store (N=1
// each) and a second connection that holds locks the store's writers wait
// for.
type groupEnv struct {
	st   *sqlstore.DB
	raw  *sql.DB
	subs []store.SubAccount
}

// pgDatabase starts a PostgreSQL server with a fresh database and returns
// its DSN and an opener of stores on it (one seal key for all of them;
// each store is the caller's to close).
func pgDatabase(t *testing.T) (dsn string, open func() *sqlstore.DB) {
	t.Helper()
	dsn = pgtest.Start(t).NewDatabase(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return dsn, func() *sqlstore.DB {
		t.Helper()
		st, err := postgres.Open(context.Background(), dsn, store.Options{SealKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

func newGroupEnv(t *testing.T, n int) *groupEnv {
	t.Helper()
	dsn, open := pgDatabase(t)
	st := open()
	t.Cleanup(func() { st.Close() })
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	e := &groupEnv{st: st, raw: raw}
	tn := storetest.Tenant(t, st, "shop")
	for i := range n {
		e.subs = append(e.subs, storetest.Protected(t, st, tn, fmt.Sprintf("staff%d", i), 1))
	}
	return e
}

// issueStatement starts the statement of an issuance (it locks the
// sub-account's row, then takes the policy seq row).
const issueStatement = "WITH l AS MATERIALIZED"

func issueReq(sub store.SubAccount) store.IssueRequest {
	var b [16]byte
	_, _ = rand.Read(b[:])
	now := time.Now()
	return store.IssueRequest{TenantID: sub.TenantID, SubID: sub.ID, DeviceID: store.NewID(), Label: "pc",
		Serial: "1" + hex.EncodeToString(b[:]), Fingerprint: "ab", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Now: now}
}

// lock takes a row lock in a transaction of its own, released by the
// returned function.
func (e *groupEnv) lock(t *testing.T, query string, args ...any) (release func()) {
	t.Helper()
	tx, err := e.raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() }) // before the store closes, if the test failed early
	if _, err := tx.Exec(query, args...); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitRowLockWaiter waits until a session waits for a row of table in the
// statement of an issuance. (A row lock's waiter holds, or waits for, a
// lock of the row's tuple.)
func (e *groupEnv) waitRowLockWaiter(t *testing.T, table string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		err := e.raw.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
			WHERE a.wait_event_type = 'Lock' AND a.query LIKE $1 AND l.locktype = 'tuple' AND l.relation = $2::regclass`,
			issueStatement+"%", table).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no issuance waits for a row of %s after 10 s (%v)", table, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPending waits until n write transactions are queued or running.
func (e *groupEnv) waitPending(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); sqlstore.Pending(e.st) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d write transactions pending after 10 s, want %d", sqlstore.Pending(e.st), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantIssued waits for n issuances' results from first and rest and fails
// on any refusal.
func (e *groupEnv) wantIssued(t *testing.T, n int, first, rest chan error) {
	t.Helper()
	for range n {
		var err error
		select {
		case err = <-first:
		case err = <-rest:
		}
		if err != nil {
			t.Fatalf("issue: %v", err)
		}
	}
}

// issueCommits is how many commits wrote the issuances' audit events.
func (e *groupEnv) issueCommits(t *testing.T) int {
	t.Helper()
	var commits int
	if err := e.raw.QueryRow(`SELECT COUNT(DISTINCT xmin::text) FROM audit WHERE action = 'device.issue'`).Scan(&commits); err != nil {
		t.Fatal(err)
	}
	return commits
}

// issueAll issues one device for each sub-account in subs concurrently,
// each with its context from ctxs (Background if nil).
func (e *groupEnv) issueAll(subs []store.SubAccount, ctxs []context.Context) chan error {
	errs := make(chan error, len(subs))
	for i, sub := range subs {
		ctx := context.Background()
		if ctxs != nil && ctxs[i] != nil {
			ctx = ctxs[i]
		}
		go func() {
			_, _, err := e.st.IssueDevice(ctx, issueReq(sub), storetest.Actor)
			errs <- err
		}()
	}
	return errs
}

// TestGroupCommitPostgres: concurrent issuances share one transaction and
// one commit (every issuance used to bump the global policy seq and append
// to its store's audit chain, holding both rows through its own commit's
// WAL flush: one flush at a time for every writer), and the shared commit
// keeps each issuance's own outcome.
func TestGroupCommitPostgres(t *testing.T) {
	e := newGroupEnv(t, 9)
	ctx := context.Background()

	// The first issuance's batch waits for the seq row; the next 7 queue
	// meanwhile and join that batch.
	release := e.lock(t, `SELECT v FROM policy_seq WHERE id = 1 FOR UPDATE`)
	first := e.issueAll(e.subs[:1], nil)
	e.waitRowLockWaiter(t, "policy_seq")
	rest := e.issueAll(e.subs[1:8], nil)
	e.waitPending(t, 8)
	release()
	e.wantIssued(t, 8, first, rest)
	if commits := e.issueCommits(t); commits != 1 {
		t.Errorf("8 concurrent issuances made %d commits, want 1", commits)
	}
	if err := e.st.VerifyAudit(ctx, e.subs[0].TenantID); err != nil {
		t.Fatal(err)
	}

	// A refused issuance in a batch (its quota of 1 is used) changes
	// nothing and leaves the others of the batch issued.
	release = e.lock(t, `SELECT v FROM policy_seq WHERE id = 1 FOR UPDATE`)
	blocker := e.issueAll(e.subs[8:9], nil)
	e.waitRowLockWaiter(t, "policy_seq")
	full := e.issueAll(e.subs[:1], nil)
	e.waitPending(t, 2)
	release()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if err := <-full; !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("issue over the quota in a batch: %v, want %v", err, store.ErrQuotaExceeded)
	}
	var devices, audits int
	if err := e.raw.QueryRow(`SELECT (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM audit WHERE action = 'device.issue')`).Scan(&devices, &audits); err != nil {
		t.Fatal(err)
	}
	if devices != 9 || audits != 9 {
		t.Errorf("%d devices and %d issue events, want 9 and 9", devices, audits)
	}
	if err := e.st.VerifyAudit(ctx, e.subs[0].TenantID); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitCallerGoneMidBatchPostgres: a caller whose context ends
// while its statement runs inside a shared batch (its client hung up) must
// not abort the transaction of the others (a driver that closes the
// connection on cancellation would fail every issuance of the batch).
func TestGroupCommitCallerGoneMidBatchPostgres(t *testing.T) {
	e := newGroupEnv(t, 4)
	// A batch of four: sub 0, then sub 1, sub 2 (whose row is locked here)
	// and sub 3, queued while sub 0 waits for the seq.
	releaseSeq := e.lock(t, `SELECT v FROM policy_seq WHERE id = 1 FOR UPDATE`)
	releaseSub := e.lock(t, `SELECT id FROM sub_accounts WHERE id = $1 FOR UPDATE`, e.subs[2].ID)
	blocker := e.issueAll(e.subs[:1], nil)
	e.waitRowLockWaiter(t, "policy_seq")
	gone, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	batch := e.issueAll(e.subs[1:], []context.Context{nil, gone, nil})
	e.waitPending(t, 4)
	// The blocker's batch takes the three queued meanwhile; sub 2's waits
	// for its row while its caller leaves.
	releaseSeq()
	e.waitRowLockWaiter(t, "sub_accounts")
	hangUp()
	releaseSub()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	var failed []error
	for range 3 {
		if err := <-batch; err != nil {
			failed = append(failed, err)
		}
	}
	// The caller that went away may see its issuance done or refused; the
	// others are issued.
	var devices int
	if err := e.raw.QueryRow(`SELECT COUNT(*) FROM devices`).Scan(&devices); err != nil {
		t.Fatal(err)
	}
	if devices != 4-len(failed) || len(failed) > 1 {
		t.Errorf("%d devices with these failures: %v; want every issuance but the one whose caller left", devices, failed)
	}
	if err := e.st.VerifyAudit(context.Background(), e.subs[0].TenantID); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitDeadlockRetryPostgres: a batch holds the policy seq (its
// first issuance bumped it) when its third issuance waits for a
// sub-account that another node's transaction holds while that one waits
// for the seq. PostgreSQL aborts one of them ("deadlock detected"); when it
// is the batch's issuance, it runs again alone after the batch's commit
// instead of failing.
func TestGroupCommitDeadlockRetryPostgres(t *testing.T) {
	e := newGroupEnv(t, 3)
	releaseSeq := e.lock(t, `SELECT v FROM policy_seq WHERE id = 1 FOR UPDATE`)
	blocker := e.issueAll(e.subs[:1], nil)
	e.waitRowLockWaiter(t, "policy_seq")
	// The other node: holds sub-account 2, later asks for the seq.
	other, err := e.raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec(`SELECT id FROM sub_accounts WHERE id = $1 FOR UPDATE`, e.subs[2].ID); err != nil {
		t.Fatal(err)
	}
	first := e.issueAll(e.subs[1:2], nil) // queued first: runs before the second
	e.waitPending(t, 2)
	second := e.issueAll(e.subs[2:3], nil)
	e.waitPending(t, 3)
	// The three share one batch (the two queued while the blocker waited
	// joined it); its third issuance waits for sub-account 2.
	releaseSeq()
	e.waitRowLockWaiter(t, "sub_accounts")
	otherDone := make(chan error, 1)
	go func() {
		_, err := other.Exec(`UPDATE policy_seq SET v = v WHERE id = 1`)
		if err == nil {
			err = other.Rollback()
		} else {
			_ = other.Rollback()
		}
		otherDone <- err
	}()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the batch's second issuance: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the issuance that met the deadlock: %v, want it run again and issued", err)
	}
	t.Logf("the other node's transaction: %v", <-otherDone)
	var devices int
	if err := e.raw.QueryRow(`SELECT COUNT(*) FROM devices`).Scan(&devices); err != nil {
		t.Fatal(err)
	}
	if devices != 3 {
		t.Errorf("%d devices, want 3", devices)
	}
	if err := e.st.VerifyAudit(context.Background(), e.subs[0].TenantID); err != nil {
		t.Fatal(err)
	}
}

// TestIssueDoesNotLockTheStoreRowPostgres: an issuance locks its
// sub-account's row, not its store's. The sub-account's SELECT joins the
// tenants table, and a plain FOR NO KEY UPDATE locked the joined tenant row
// too: every issuance of a store (on every node) waited for any transaction
// holding that row (the owner console's certificate requirement, a store
// rename), and inside a group commit the row's lock grew a MultiXact per
// issuance.
func TestIssueDoesNotLockTheStoreRowPostgres(t *testing.T) {
	e := newGroupEnv(t, 2)
	release := e.lock(t, `SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, e.subs[0].TenantID)
	issued := e.issueAll(e.subs[:1], nil)
	select {
	case err := <-issued:
		release()
		if err != nil {
			t.Fatalf("issue while the store's row is held: %v", err)
		}
	case <-time.After(10 * time.Second):
		release()
		<-issued
		t.Fatal("the issuance waited for the store's row")
	}
	// The sub-account's own row still serializes its issuances.
	releaseSub := e.lock(t, `SELECT id FROM sub_accounts WHERE id = $1 FOR NO KEY UPDATE`, e.subs[1].ID)
	done := e.issueAll(e.subs[1:2], nil)
	e.waitRowLockWaiter(t, "sub_accounts")
	releaseSub()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitRefusalInBatchPostgres: a batch runs its issuances
// without savepoints; when one is refused in the middle of the batch, the
// batch starts over with a savepoint per issuance, so the refused one
// leaves nothing (not its ticket's use, not its seq bump, not its audit
// event) and the others still share one commit.
func TestGroupCommitRefusalInBatchPostgres(t *testing.T) {
	e := newGroupEnv(t, 4)
	if _, _, err := e.st.IssueDevice(context.Background(), issueReq(e.subs[1]), storetest.Actor); err != nil {
		t.Fatal(err) // sub 1's quota of 1 is now used
	}
	var seqBefore int64
	if err := e.raw.QueryRow(`SELECT v FROM policy_seq WHERE id = 1`).Scan(&seqBefore); err != nil {
		t.Fatal(err)
	}
	// The refused issuance comes with an enrollment code: consuming it is
	// a write of the refused issuance that must not stay.
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	if err := e.st.CreateTicket(context.Background(), store.NewTicket{TenantID: e.subs[1].TenantID, SubID: e.subs[1].ID,
		Hash: hash, ExpiresAt: time.Now().Add(time.Hour)}, storetest.Actor); err != nil {
		t.Fatal(err)
	}
	release := e.lock(t, `SELECT v FROM policy_seq WHERE id = 1 FOR UPDATE`)
	blocker := e.issueAll(e.subs[3:4], nil)
	e.waitRowLockWaiter(t, "policy_seq")
	batch := e.issueAll([]store.SubAccount{e.subs[0], e.subs[2]}, nil)
	withCode := issueReq(e.subs[1])
	withCode.TicketHash = hash
	go func() {
		_, _, err := e.st.IssueDevice(context.Background(), withCode, storetest.Actor)
		batch <- err
	}()
	e.waitPending(t, 4)
	release()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	var refused int
	for range 3 {
		err := <-batch
		switch {
		case errors.Is(err, store.ErrQuotaExceeded):
			refused++
		case err != nil:
			t.Fatalf("issue in a batch: %v", err)
		}
	}
	if refused != 1 {
		t.Fatalf("%d issuances refused, want 1 (sub 1's quota is used)", refused)
	}
	var devices, events, commits int
	var seqAfter int64
	if err := e.raw.QueryRow(`SELECT (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM audit WHERE action = 'device.issue'),
		(SELECT COUNT(DISTINCT xmin::text) FROM audit WHERE action = 'device.issue'), (SELECT v FROM policy_seq WHERE id = 1)`).
		Scan(&devices, &events, &commits, &seqAfter); err != nil {
		t.Fatal(err)
	}
	// Commits: sub 1's first issuance, then one batch (the blocker and the
	// three queued while it waited). (The audit rows are written at the
	// batch's top level; a device row written in a savepoint carries the
	// savepoint's xid.)
	if devices != 4 || events != 4 || commits != 2 || seqAfter != seqBefore+3 {
		t.Errorf("%d devices, %d issue events in %d commits, seq +%d; want 4, 4, 2, +3",
			devices, events, commits, seqAfter-seqBefore)
	}
	if _, err := e.st.LookupTicket(context.Background(), hash, time.Now()); err != nil {
		t.Errorf("the refused issuance's code: %v, want it still unused", err)
	}
	if err := e.st.VerifyAudit(context.Background(), e.subs[0].TenantID); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitBatchGrowsPostgres: issuances queued while a batch runs
// join it before its commit instead of waiting for a batch of their own.
func TestGroupCommitBatchGrowsPostgres(t *testing.T) {
	e := newGroupEnv(t, 3)
	// The first issuance's batch waits for its sub-account's row; the
	// next two queue meanwhile.
	release := e.lock(t, `SELECT id FROM sub_accounts WHERE id = $1 FOR UPDATE`, e.subs[0].ID)
	first := e.issueAll(e.subs[:1], nil)
	e.waitRowLockWaiter(t, "sub_accounts")
	rest := e.issueAll(e.subs[1:], nil)
	e.waitPending(t, 3)
	release()
	e.wantIssued(t, 3, first, rest)
	if commits := e.issueCommits(t); commits != 1 {
		t.Errorf("3 issuances in %d commits, want 1 (the two queued while the batch ran join it)", commits)
	}
	if err := e.st.VerifyAudit(context.Background(), e.subs[0].TenantID); err != nil {
		t.Fatal(err)
	}
}
