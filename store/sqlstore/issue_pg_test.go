package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestIssueCountsWhatCommittedDuringItsWaitPostgres: an issuance that
// waited for its sub-account's lock counts the devices that the lock's
// holder (another node's issuance) committed meanwhile. The issuance locks,
// counts and inserts in one statement, whose own snapshot was taken before
// the wait: counted there, the quota of 1 would hold 2 devices, and a key
// would be certified twice. A sub-account frozen meanwhile is seen frozen.
func TestIssueCountsWhatCommittedDuringItsWaitPostgres(t *testing.T) {
	insertDevice := func(key string) func(tx *sql.Tx, sub store.SubAccount) error {
		return func(tx *sql.Tx, sub store.SubAccount) error {
			now := time.Now()
			_, err := tx.Exec(`INSERT INTO devices (id, tenant_id, sub_id, label, serial, fingerprint, key_id, status, issued_at, expires_at,
				enrolled_ip, enrolled_ua, last_seen_at, last_seen_ip, revoked_at, reason, change_seq)
				VALUES ($1, $2, $3, 'other node', 'ff01', 'ff', $4, $5, $6, $7, '', '', 0, '', 0, 0, 0)`,
				store.NewID(), sub.TenantID, sub.ID, key, store.DeviceActive, now.UnixMicro(), now.Add(time.Hour).UnixMicro())
			return err
		}
	}
	for _, tc := range []struct {
		name  string
		other func(tx *sql.Tx, sub store.SubAccount) error // the other node's write, under the lock
		want  string                                       // the refusal
	}{
		{"quota", insertDevice("bb"), store.ErrQuotaExceeded.Error()},
		{"key", insertDevice("aa"), store.ErrKeyInUse.Error()},
		{"frozen", func(tx *sql.Tx, sub store.SubAccount) error {
			_, err := tx.Exec(`UPDATE sub_accounts SET status = $1 WHERE id = $2`, store.StatusFrozen, sub.ID)
			return err
		}, (&store.NotEligibleError{Reason: "frozen"}).Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newGroupEnv(t, 1) // N = 1
			sub := e.subs[0]
			other, err := e.raw.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer other.Rollback()
			if _, err := other.Exec(`SELECT id FROM sub_accounts WHERE id = $1 FOR NO KEY UPDATE`, sub.ID); err != nil {
				t.Fatal(err)
			}
			if err := tc.other(other, sub); err != nil {
				t.Fatal(err)
			}
			r := issueReq(sub)
			r.KeyID = "aa"
			issued := make(chan error, 1)
			go func() {
				_, _, err := e.st.IssueDevice(context.Background(), r, storetest.Actor)
				issued <- err
			}()
			e.waitRowLockWaiter(t, "sub_accounts")
			if err := other.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-issued; err == nil || err.Error() != tc.want {
				t.Fatalf("issue after the other node's commit: %v, want %v", err, tc.want)
			}
			var devices int
			if err := e.raw.QueryRow(`SELECT COUNT(*) FROM devices WHERE sub_id = $1 AND label <> 'other node'`, sub.ID).Scan(&devices); err != nil {
				t.Fatal(err)
			}
			if devices != 0 {
				t.Errorf("%d devices issued by the refused issuance", devices)
			}
			// The legitimate case: without the other node's write, the same
			// request is issued.
			if _, err := e.raw.Exec(`DELETE FROM devices WHERE sub_id = $1`, sub.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.raw.Exec(`UPDATE sub_accounts SET status = $1 WHERE id = $2`, store.StatusActive, sub.ID); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.st.IssueDevice(context.Background(), r, storetest.Actor); err != nil {
				t.Fatalf("issue with the quota free: %v", err)
			}
		})
	}
}

// TestSubAccountLookupByKeyPostgres: the statements of an issuance (the
// pre-check, the code's creation, the issuance) read a sub-account by its
// primary key, not by scanning its store. With the store's id in the
// same WHERE, PostgreSQL without statistics (a table filled since its
// last ANALYZE) took the (tenant_id, role) index and read every
// sub-account of the store: 500 rows per statement here.
func TestSubAccountLookupByKeyPostgres(t *testing.T) {
	dsn, open := pgDatabase(t)
	ctx := context.Background()
	st := open()
	tn := storetest.Tenant(t, st, "shop")
	sub := storetest.Protected(t, st, tn, "kim", 1)
	st.Close()
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO sub_accounts (id, tenant_id, name, role, grants, status, password_hash, phone_enabled,
		protect_enabled, max_devices, not_before, not_after, change_seq, created_at, updated_at)
		SELECT 'x' || g, $1, 'staff' || g, 'cashier', '', 'active', '', 1, 1, 1, 0, 0, 0, 0, 0 FROM generate_series(1, 500) g`, tn.ID); err != nil {
		t.Fatal(err)
	}
	// Rows of sub_accounts read so far, by every backend that ended (a
	// backend reports its counts when it exits).
	rowsRead := func() int64 {
		var n int64
		if err := raw.QueryRow(`SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relname = 'sub_accounts'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := rowsRead()

	st = open()
	now := time.Now()
	if _, err := st.IssuePrecheck(ctx, nil, tn.ID, sub.ID, now); err != nil {
		t.Fatal(err)
	}
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	if err := st.CreateTicket(ctx, store.NewTicket{TenantID: tn.ID, SubID: sub.ID, Hash: hash, ExpiresAt: now.Add(time.Hour)}, storetest.Actor); err != nil {
		t.Fatal(err)
	}
	if _, err := st.IssuePrecheck(ctx, hash, "", "", now); err != nil {
		t.Fatal(err)
	}
	r := issueReq(sub)
	r.TicketHash = hash
	if _, _, err := st.IssueDevice(ctx, r, storetest.Actor); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var read int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if read = rowsRead() - before; read > 0 || time.Now().After(deadline) {
			break
		}
	}
	// Four look-ups, the foreign keys' checks, and the rows the store
	// reads when it opens: a few dozen at most, not 4 x 500.
	if read == 0 || read > 100 {
		t.Errorf("4 statements of an issuance read %d rows of sub_accounts, want a handful (the primary key)", read)
	}
	t.Logf("rows of sub_accounts read: %d", read)
}
