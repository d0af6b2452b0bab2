package storetest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store/sqlstore"
)

// RunInternals checks what only raw SQL can see: secrets are sealed at
// rest, and the audit log refuses changes (and, with its trigger dropped by
// dropTrigger, a tampered row breaks VerifyAudit).
func RunInternals(t *testing.T, db *sqlstore.DB, dropTrigger string) {
	e := newEnv(t, db)
	ctx := context.Background()
	secret := []byte("JBSWY3DPEHPK3PXPPLAINTEXT")
	s := e.mustSub(e.tenant, "alice")
	if _, err := db.EnablePhone(ctx, e.tenant.ID, s.ID, secret, actor); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.SQL().QueryRowContext(ctx, db.Rebind(`SELECT totp FROM sub_accounts WHERE id = ?`), s.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || bytes.Contains(raw, secret) {
		t.Fatal("TOTP secret is stored in plaintext")
	}
	// A sealed secret copied to another row does not open there.
	s2 := e.mustSub(e.tenant, "bob")
	if _, err := db.SQL().ExecContext(ctx, db.Rebind(`UPDATE sub_accounts SET totp = ?, phone_enabled = 1 WHERE id = ?`), raw, s2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSubAccount(ctx, e.tenant.ID, s2.ID); err == nil {
		t.Fatal("a sealed secret moved to another row opened")
	}

	// A session's secret (an owner's TOTP key being set up) is sealed too,
	// and only the hash of the session id is kept.
	se := e.newSession("internals-session", nil, time.Now())
	se.Secret = []byte("otpauth://totp/x?secret=SESSIONPLAINTEXT")
	if err := db.CreateSession(ctx, se, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRowContext(ctx, db.Rebind(`SELECT secret FROM sessions WHERE hash = ?`), se.Hash).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || bytes.Contains(raw, []byte("SESSIONPLAINTEXT")) {
		t.Fatal("a session's secret is stored in plaintext")
	}

	if _, err := db.SQL().ExecContext(ctx, `UPDATE audit SET target = 'x'`); err == nil {
		t.Fatal("audit rows can be updated")
	}
	if _, err := db.SQL().ExecContext(ctx, `DELETE FROM audit`); err == nil {
		t.Fatal("audit rows can be deleted")
	}
	if err := db.VerifyAudit(ctx, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, dropTrigger); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, db.Rebind(`UPDATE audit SET target = 'shop:mallory' WHERE tenant_id = ? AND seq = 2`), e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	err := db.VerifyAudit(ctx, e.tenant.ID)
	if err == nil || !strings.Contains(err.Error(), "seq 2") {
		t.Fatalf("tampered audit row not detected: %v", err)
	}
}
