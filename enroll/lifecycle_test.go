package enroll_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

func day(t time.Time) string { return t.In(time.Local).Format(time.DateOnly) }

// A temporary sub-account in the console: created with a window, shown as
// temporary, its certificate ends with the window, its staff session ends
// at the window's end by the portal's clock (nobody acting), login is
// refused after it, and the owner's extension (audited) opens it again.
func TestTemporaryPortal(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	from, until := e.now.AddDate(0, 0, -1), e.now.AddDate(0, 0, 10)
	end := time.Date(until.Year(), until.Month(), until.Day(), 0, 0, 0, 0, time.Local).AddDate(0, 0, 1) // the last day included

	// A bad window creates nothing.
	before := auditCount(e)
	owner.get("/owner/")
	for _, w := range []url.Values{{"from": {day(until)}, "until": {day(from)}}, {"until": {"12/21/2026"}}} {
		f := url.Values{"name": {"促销客服"}, "role": {"customer-service"}, "password": {"staff-password-1"}}
		for k, v := range w {
			f[k] = v
		}
		if st, _, _ := owner.post("/owner/subs", f); st != http.StatusBadRequest || !strings.Contains(owner.last, "validity period as dates") {
			t.Fatalf("bad window %v: %d", w, st)
		}
	}
	if n := auditCount(e); n != before {
		t.Fatal("a refused creation wrote to the records")
	}
	if st, _, _ := owner.post("/owner/subs", url.Values{"name": {"促销客服"}, "role": {"customer-service"}, "password": {"staff-password-1"},
		"from": {day(from)}, "until": {day(until)}}); st != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", st, owner.last)
	}
	sub, err := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, "促销客服")
	if err != nil || !sub.Temporary() || !sub.Window.NotAfter.Equal(end) {
		t.Fatalf("created %+v %v, want a window ending %v", sub.Window, err, end)
	}
	owner.get("/owner/")
	if !strings.Contains(owner.last, "temporary, until "+day(until)) {
		t.Fatalf("the list does not mark the temporary account:\n%s", owner.last)
	}
	secret := owner.protect(sub, "1")

	staff := e.browser()
	staff.staffLogin("shop:促销客服", "staff-password-1", secret)
	st, v := staff.enroll(csrPEM(t), "promo desk", true)
	if st != http.StatusOK {
		t.Fatalf("enroll: %d %v", st, v)
	}
	block, _ := pem.Decode([]byte(v["certificate"].(string)))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.NotAfter.Equal(end) {
		t.Fatalf("certificate NotAfter %v (%v), want the window's end %v", cert.NotAfter, err, end)
	}

	// The window ends (the owner moves the end close, then the portal's
	// clock passes it): the next staff request ends the session.
	soon := e.now.Add(5 * time.Minute).Truncate(time.Second)
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, sub.ID, store.Window{NotBefore: sub.Window.NotBefore, NotAfter: soon}, store.Actor{Kind: "cli"}); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := staff.get("/staff/"); st != http.StatusOK {
		t.Fatalf("staff page before the end: %d", st)
	}
	e.now = soon
	if st, _, _ := staff.get("/staff/"); st != http.StatusForbidden || !strings.Contains(staff.last, "outside its validity period") {
		t.Fatalf("staff page after the window: %d\n%s", st, staff.last)
	}
	if st, _, loc := staff.get("/staff/"); st != http.StatusSeeOther || loc != "/staff/login" {
		t.Fatalf("the session outlived the window: %d %s", st, loc)
	}
	again := e.browser()
	again.get("/staff/login")
	if st, _, _ := again.post("/staff/login", url.Values{"username": {"shop:促销客服"}, "password": {"staff-password-1"}}); st != http.StatusForbidden ||
		!strings.Contains(again.last, "outside its validity period") {
		t.Fatalf("login after the window: %d\n%s", st, again.last)
	}
	zh := e.browser()
	zh.get("/lang?to=zh&back=/staff/login")
	zh.get("/staff/login")
	if st, _, _ := zh.post("/staff/login", url.Values{"username": {"shop:促销客服"}, "password": {"staff-password-1"}}); st != http.StatusForbidden ||
		!strings.Contains(zh.last, "该临时子账号不在有效期内") {
		t.Fatalf("zh login after the window: %d\n%s", st, zh.last)
	}
	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, "The validity period is over.") {
		t.Fatalf("the owner does not see the window is over:\n%s", owner.last)
	}

	// A bad extension changes nothing; a good one is audited and reopens.
	before = auditCount(e)
	for _, f := range []url.Values{{"until": {""}}, {"from": {day(until)}, "until": {day(from)}}, {"until": {"soon"}}} {
		if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/window", f); st != http.StatusBadRequest {
			t.Fatalf("bad extension %v: %d", f, st)
		}
	}
	if n := auditCount(e); n != before {
		t.Fatal("a refused extension wrote to the records")
	}
	later := until.AddDate(0, 0, 7)
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/window", url.Values{"from": {day(from)}, "until": {day(later)}}); st != http.StatusSeeOther {
		t.Fatalf("extend: %d\n%s", st, owner.last)
	}
	again.staffLogin("shop:促销客服", "staff-password-1", secret)
	owner.get("/owner/audit?target=" + url.QueryEscape("shop:促销客服") + "&action=sub.validity")
	if !strings.Contains(owner.last, "sub.validity") || !strings.Contains(owner.last, "before_not_after="+soon.UTC().Format(time.RFC3339)) {
		t.Fatalf("the extension is not in the records with the old end:\n%s", owner.last)
	}
	_, csv, _ := owner.get("/owner/audit.csv?action=sub.")
	if !strings.Contains(csv, "sub.validity") || !strings.Contains(csv, "sub.session") {
		t.Fatalf("CSV export lacks the window events:\n%s", csv)
	}
}

// Positions per store in the console: the owner edits a position's points
// (high-risk ones marked), a sub-account's supplementary points, resets a
// position; another store is untouched; names are never reused.
func TestPositionsConsole(t *testing.T) {
	e := newEnv(t)
	other := e.st
	otherStore, err := other.CreateTenant(e.ctx, store.NewTenant{Name: "other"}, store.Actor{Kind: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SetPosition(e.ctx, otherStore.ID, "finance", []string{"members"}, store.Actor{Kind: "cli"}); err != nil {
		t.Fatal(err)
	}
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub("小美", "customer-service", "staff-password-1")

	owner.get("/owner/positions")
	if !strings.Contains(owner.last, `id="pos-finance"`) || strings.Count(owner.last, "Edited for this store") != 0 || !strings.Contains(owner.last, "(high risk)") {
		t.Fatalf("positions page:\n%s", owner.last)
	}
	before := auditCount(e)
	if st, _, _ := owner.post("/owner/positions/customer-service", url.Values{"points": {"chat", "nope"}}); st != http.StatusBadRequest {
		t.Fatalf("unknown point: %d", st)
	}
	if st, _, _ := owner.post("/owner/positions/boss", url.Values{"points": {"chat"}}); st != http.StatusBadRequest {
		t.Fatalf("unknown position: %d", st)
	}
	if auditCount(e) != before {
		t.Fatal("a refused position edit wrote to the records")
	}
	if st, _, loc := owner.post("/owner/positions/customer-service", url.Values{"points": {"chat", "refunds", "orders.sold"}}); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/owner/positions?ok=position_saved") {
		t.Fatalf("edit: %d %s\n%s", st, loc, owner.last)
	}
	owner.get("/owner/positions?ok=position_saved")
	if !strings.Contains(owner.last, "every sub-account of it has the new points") || strings.Count(owner.last, "Edited for this store") != 1 {
		t.Fatalf("after the edit:\n%s", owner.last)
	}
	list, _ := e.st.ListPositions(e.ctx, e.tenant.ID)
	if len(list) != 1 || !slices.Equal(list[0].Points, []string{"chat", "orders.sold", "refunds"}) {
		t.Fatalf("stored positions %+v", list)
	}
	if l, _ := e.st.ListPositions(e.ctx, otherStore.ID); len(l) != 1 || l[0].Role != "finance" {
		t.Fatalf("the other store's positions changed: %+v", l)
	}

	// The sub-account page: this store's points plus supplementary ones,
	// high-risk ones listed.
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/role", url.Values{"role": {"customer-service"}, "grants": {"orders.export"}}); st != http.StatusSeeOther {
		t.Fatalf("supplementary points: %d\n%s", st, owner.last)
	}
	owner.get("/owner/subs/" + sub.ID)
	high := between(owner.last, `id="high-risk-perms">`, "<")
	if high != "Sold items, Export order-related files (logistics)" {
		t.Fatalf("high-risk permissions %q\n%s", high, owner.last)
	}
	if strings.Contains(between(owner.last, `class="perms">`, "<"), "Product listing") {
		t.Fatal("the sub-account page shows the catalog's default instead of the store's points")
	}
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/role", url.Values{"role": {"boss"}}); st != http.StatusBadRequest {
		t.Fatalf("unknown position for a sub-account: %d", st)
	}

	if st, _, _ := owner.post("/owner/positions/customer-service", url.Values{"action": {"reset"}}); st != http.StatusSeeOther {
		t.Fatalf("reset: %d", st)
	}
	if l, _ := e.st.ListPositions(e.ctx, e.tenant.ID); len(l) != 0 {
		t.Fatalf("after reset: %+v", l)
	}
	owner.get("/owner/audit?action=position.")
	for _, want := range []string{"position.edit", "position.reset", "points=chat,orders.sold,refunds"} {
		if !strings.Contains(owner.last, want) {
			t.Fatalf("records lack %q:\n%s", want, owner.last)
		}
	}
	if _, csv, _ := owner.get("/owner/audit.csv?action=position."); !strings.Contains(csv, "position.edit") || strings.Contains(csv, "sub.create") {
		t.Fatalf("CSV of position events:\n%s", csv)
	}

	// Seed 002: a departed name stays taken; the message says where to look.
	owner.get("/owner/subs/" + sub.ID)
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/status", url.Values{"action": {"depart"}}); st != http.StatusSeeOther {
		t.Fatalf("depart: %d", st)
	}
	owner.get("/owner/")
	if st, _, _ := owner.post("/owner/subs", url.Values{"name": {"小美"}, "role": {"finance"}, "password": {"staff-password-2"}}); st != http.StatusConflict ||
		!strings.Contains(owner.last, "never reused") || !strings.Contains(owner.last, "Departed sub-accounts") {
		t.Fatalf("reusing a departed name: %d\n%s", st, owner.last)
	}
}

func auditCount(e *env) int {
	evs, err := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

// between is the text of s after start up to the next end.
func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	out, _, _ := strings.Cut(rest, end)
	return out
}
