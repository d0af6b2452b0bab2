package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

func TestVerificationConformance(t *testing.T) {
	storetest.RunVerification(t, func(t *testing.T) store.Store { return open(t) })
}

// TestVerificationStoresNoPlaintextPerson: after a person is bound, neither
// the database file nor its WAL holds the identity number or the phone.
func TestVerificationStoresNoPlaintextPerson(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := Open(context.Background(), filepath.Join(dir, "db.sqlite"), store.Options{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	tn := storetest.Tenant(t, st, "shop")
	s := storetest.Sub(t, st, store.NewSubAccount{TenantID: tn.ID, Name: "alice", VerifyBy: time.Now().Add(store.VerifyPeriod)})
	person := store.Person{IDNumber: "11010519491231002X", Phone: "13800138000"}
	if _, err := st.UpdateVerification(ctx, tn.ID, s.ID, storetest.Actor, "verify.submit", func(v *store.Verification) (map[string]string, error) {
		v.State, v.Person = store.VerifyUnderReview, &person
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	var idHash []byte
	if err := st.SQL().QueryRow(`SELECT id_hash FROM verifications WHERE sub_id = ?`, s.ID).Scan(&idHash); err != nil || len(idHash) != 32 {
		t.Fatalf("id hash %x: %v", idHash, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{person.IDNumber, person.Phone} {
			if bytes.Contains(b, []byte(secret)) {
				t.Fatalf("%s holds %q in plaintext", filepath.Base(f), secret)
			}
		}
	}
}
