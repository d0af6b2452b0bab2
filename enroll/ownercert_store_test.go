package enroll_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/store"
)

// With the owner's certificate required, a store that cannot answer the
// certificate check fails closed: every owner page and action is refused
// (500, no owner content, nothing changed) even with a valid owner
// certificate; once the store is back the same browser gets in at once.
// Each table the check reads is taken away in turn.
func TestOwnerCertCheckWhileStoreFails(t *testing.T) {
	for _, table := range []string{"tenants", "sub_accounts", "devices"} {
		t.Run(table+" away", func(t *testing.T) {
			e := newFileEnv(t)
			console := e.ownerConsole()
			setup := e.browser()
			secret := setup.ownerLogin("")
			sub := setup.newSub("小明", "customer-service", "staff-password-1")
			good, _ := setup.enrolledOwnerCert("office pc")
			owner := e.certBrowser(good).at(console, "")
			owner.ownerLogin(secret)
			if st := owner.setRequired(secret, "on"); st != http.StatusSeeOther || !e.ownerCertRequired() {
				t.Fatalf("turn on: %d\n%s", st, owner.last)
			}
			if st, _, _ := owner.get("/owner/"); st != http.StatusOK {
				t.Fatalf("owner page with the certificate and a working store: %d", st)
			}
			tok := pageCSRF(t, owner)

			back := tableAway(t, e, table)
			for _, path := range []string{"/owner/", "/owner/subs/" + sub.ID, "/owner/certs"} {
				if st, body, _ := owner.get(path); st != http.StatusInternalServerError || strings.Contains(body, "小明") {
					t.Fatalf("GET %s while %s is away: %d\n%s", path, table, st, body)
				}
			}
			if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/status", url.Values{"csrf": {tok}, "action": {"freeze"}}); st != http.StatusInternalServerError {
				t.Fatalf("freeze while %s is away: %d", table, st)
			}
			back()

			if s, _ := e.st.GetSubAccount(e.ctx, e.tenant.ID, sub.ID); s.Status != store.StatusActive {
				t.Fatalf("the refused freeze changed the account: %s", s.Status)
			}
			if st, body, _ := owner.get("/owner/subs/" + sub.ID); st != http.StatusOK || !strings.Contains(body, "小明") {
				t.Fatalf("owner page once the store is back: %d", st)
			}
		})
	}
}
