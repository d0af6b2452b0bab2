package enroll_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite"
	"github.com/devicegate/devicegate/store/storetest"
)

const staffPassword = "staff-password-123"

// loginForm is one of the portal's two password forms.
type loginForm struct {
	name, page string
	fields     func(password string) url.Values
	in         string // where the right password leads
}

var loginForms = []loginForm{
	{"owner", "/owner/login", func(pw string) url.Values { return url.Values{"store": {"shop"}, "password": {pw}} }, "/owner/totp"},
	{"staff", "/staff/login", func(pw string) url.Values { return url.Values{"username": {"shop:kim"}, "password": {pw}} }, "/staff/"},
}

func (f loginForm) try(b *browser, password string) (int, string) {
	b.t.Helper()
	b.get(f.page)
	st, _, loc := b.post(f.page, f.fields(password))
	return st, loc
}

func (f loginForm) password() string {
	if f.name == "owner" {
		return ownerPassword
	}
	return staffPassword
}

// fileEnv is an env over a SQLite file the test knows, so that it can
// break the store and open it again.
type fileEnv struct {
	*env
	path string
	key  []byte
}

func newFileEnv(t *testing.T) *fileEnv {
	t.Helper()
	f := &fileEnv{path: filepath.Join(t.TempDir(), "db.sqlite"), key: make([]byte, 32)}
	f.env = newEnvOver(t, f.open(t))
	return f
}

// open opens the file (again), closed when the test ends.
func (f *fileEnv) open(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), f.path, store.Options{SealKey: f.key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// tenantsAway makes the store's account lookups fail while its lockout
// counters and sessions keep working; the returned func puts it back.
func tenantsAway(t *testing.T, f *fileEnv) func() { return tableAway(t, f, "tenants") }

// tableAway makes every read of table fail with a real database error
// (from a second connection to the same file: the table is renamed); the
// returned func puts it back.
func tableAway(t *testing.T, f *fileEnv, table string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+f.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`ALTER TABLE ` + table + ` RENAME TO ` + table + `_away`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := db.Exec(`ALTER TABLE ` + table + `_away RENAME TO ` + table); err != nil {
			t.Fatal(err)
		}
	}
}

// A store that cannot answer at login is not a wrong password: every try
// is answered 503 "try again later" (never "wrong password" or "locked"),
// nothing counts toward the lockout and nothing is audited as a bad
// password; once the store is back the same client logs in at once. Both
// an account lookup that fails (while the counters work) and a store that
// is gone entirely (closed; a new portal node over the reopened file).
func TestLoginWhileStoreFails(t *testing.T) {
	for _, f := range loginForms {
		t.Run(f.name+" lookup fails", func(t *testing.T) {
			e := newFileEnv(t)
			addStaff(t, e.env)
			b := e.browser()
			back := tenantsAway(t, e)
			for i, pw := range []string{f.password(), "wrong-password", f.password(), "wrong-password", f.password(), "wrong-password", f.password()} {
				if st, _ := f.try(b, pw); st != http.StatusServiceUnavailable || errorText(b.last) == "" ||
					!strings.Contains(b.last, "Try again later") || strings.Contains(b.last, "Wrong account") || strings.Contains(b.last, "Too many") {
					t.Fatalf("try %d while the lookup fails: %d, error %q", i, st, errorText(b.last))
				}
			}
			back()
			if st, loc := f.try(b, f.password()); st != http.StatusSeeOther || loc != f.in {
				t.Fatalf("right password once the store is back: %d %q (%s), want %d %q", st, loc, errorText(b.last), http.StatusSeeOther, f.in)
			}
			assertNoBadPassword(t, e.env)
		})
		t.Run(f.name+" store closed", func(t *testing.T) {
			e := newFileEnv(t)
			addStaff(t, e.env)
			b := e.browser()
			b.get(f.page) // the form, while the store still answers
			e.st.Close()
			for i := range 6 {
				st, _, _ := b.post(f.page, f.fields(f.password()))
				if st != http.StatusServiceUnavailable || !strings.Contains(b.last, "Try again later") || strings.Contains(b.last, "Too many") {
					t.Fatalf("try %d with the store closed: %d, error %q", i, st, errorText(b.last))
				}
			}
			e.st = e.open(t)
			if st, loc := f.try(b.at(e.portalNode(), ""), f.password()); st != http.StatusSeeOther || loc != f.in {
				t.Fatalf("right password with the store back: %d %q (%s)", st, loc, errorText(b.last))
			}
		})
	}
	// The legitimate refusal stays what it was: a wrong password with a
	// working store is a 401 "wrong account or password".
	e := newEnv(t)
	if st, _ := loginForms[0].try(e.browser(), "wrong-password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", st)
	}
}

// The owner's TOTP step with a failing lookup: 503, the code neither
// counted nor spent, and accepted once the store is back.
func TestOwnerTOTPWhileStoreFails(t *testing.T) {
	e := newFileEnv(t)
	b := e.browser()
	secret := b.ownerLogin("")
	b.get("/owner/login")
	if st, _, loc := b.post("/owner/login", url.Values{"store": {"shop"}, "password": {ownerPassword}}); st != http.StatusSeeOther || loc != "/owner/totp" {
		t.Fatalf("password step: %d %q", st, loc)
	}
	b.get("/owner/totp")
	e.now = e.now.Add(30 * time.Second)
	c := code(t, secret, e.now)
	back := tenantsAway(t, e)
	for i := range 6 {
		if st, _, _ := b.post("/owner/totp", url.Values{"code": {c}}); st != http.StatusServiceUnavailable || !strings.Contains(b.last, "Try again later") {
			t.Fatalf("TOTP try %d while the lookup fails: %d %q", i, st, errorText(b.last))
		}
	}
	back()
	if st, _, loc := b.post("/owner/totp", url.Values{"code": {c}}); st != http.StatusSeeOther || loc != "/owner/" {
		t.Fatalf("the same code once the store is back: %d %q %q", st, loc, errorText(b.last))
	}
}

// addStaff creates shop:kim, active, with a password and no phone.
func addStaff(t *testing.T, e *env) {
	t.Helper()
	hash, _ := secrets.HashPassword(staffPassword)
	storetest.Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "kim", Role: "finance", PasswordHash: hash})
}

func assertNoBadPassword(t *testing.T, e *env) {
	t.Helper()
	evs, err := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if strings.HasPrefix(ev.Outcome, "bad_") {
			t.Fatalf("a store failure was audited as %s %s", ev.Action, ev.Outcome)
		}
	}
}
