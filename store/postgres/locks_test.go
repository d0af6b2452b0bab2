package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestSubLockLetsAuditAppend: a transaction that locked a sub-account (here
// CreateTicket, as issuance and revocation do) and waits for its store's
// audit head must not block the transaction holding that head while it
// inserts its audit rows. The audit rows' foreign key to the store takes
// a key-share lock on the store's row, which SELECT ... FOR UPDATE over
// the sub-account joined with its store used to hold exclusively: the two
// waited on each other and PostgreSQL aborted one ("deadlock detected";
// seen with proxies writing audit while a CA created tickets).
func TestSubLockLetsAuditAppend(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx := context.Background()
	st, err := Open(ctx, dsn, store.Options{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn := storetest.Tenant(t, st, "shop")
	sub := storetest.Sub(t, st, store.NewSubAccount{TenantID: tn.ID, Name: "kim"})

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The audit writer: holds the store's audit head.
	head, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer head.Rollback()
	var seq int64
	if err := head.QueryRowContext(ctx, `SELECT seq FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`, tn.ID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	// The sub-account's writer locks the sub-account, then waits for the head.
	created := make(chan error, 1)
	go func() {
		hash := make([]byte, 32)
		_, _ = rand.Read(hash)
		created <- st.CreateTicket(ctx, store.NewTicket{TenantID: tn.ID, SubID: sub.ID, Hash: hash, ExpiresAt: time.Now().Add(time.Hour)}, storetest.Actor)
	}()
	waitBlockedOnHead(t, db)
	// The audit writer inserts its row (foreign key to the store) and ends.
	insertCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := head.ExecContext(insertCtx, `INSERT INTO audit (tenant_id, seq, at, actor_kind, actor_name, actor_ip, actor_ua, action, target, outcome, detail, prev_hash, hash)
		VALUES ($1, $2, 0, 'proxy', 'p', '', '', 'proxy.allow', '', 'ok', '{}', '', '')`, tn.ID, seq+1); err != nil {
		t.Fatalf("the audit writer could not insert while a sub-account was locked: %v", err)
	}
	if err := head.Rollback(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-created:
		if err != nil {
			t.Fatalf("the sub-account's writer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sub-account's writer did not finish")
	}
}

// waitBlockedOnHead waits until a session waits for a lock on the audit head
// (reading it, or moving the head that its process wrote last).
func waitBlockedOnHead(t *testing.T, db *sql.DB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE 'SELECT seq, hash FROM audit_heads%' OR query LIKE 'WITH h AS (UPDATE audit_heads%')`).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waits for the audit head after 10 s (%v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
