package sqlstore_test

import (
	"context"
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
