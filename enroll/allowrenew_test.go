package enroll_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// The owner allows an active device one early renewal with the button in
// the device list (CSRF-protected, redirected back to the sub-account with
// a notice, audited); without a CSRF token, or for a revoked device, nothing
// changes.
func TestOwnerAllowsEarlyRenewal(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub("a1", "customer-service", "staff-password-1")
	secret := owner.protect(sub, "2")
	staff := e.browser()
	staff.staffLogin("shop:a1", "staff-password-1", secret)
	var ids []string
	for _, label := range []string{"front desk", "back office"} {
		st, v := staff.enroll(csrPEM(t), label, true)
		if st != http.StatusOK {
			t.Fatalf("enroll: %d %v", st, v)
		}
		ids = append(ids, v["device_id"].(string))
	}
	path := func(id string) string { return "/owner/subs/" + sub.ID + "/devices/" + id + "/allow-renew" }
	allowedUntil := func(id string) time.Time {
		d, err := e.st.GetDevice(e.ctx, e.tenant.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.RenewAllowedUntil
	}

	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, `action="`+path(ids[0])+`"`) || !strings.Contains(owner.last, "Allow early renewal") {
		t.Fatalf("the device list has no allow-renew button:\n%s", owner.last)
	}
	// No CSRF token: refused, nothing changes.
	if st, _, _ := owner.post(path(ids[0]), url.Values{"csrf": {""}}); st != http.StatusForbidden {
		t.Fatalf("without a CSRF token: %d", st)
	}
	if !allowedUntil(ids[0]).IsZero() {
		t.Fatal("a request without a CSRF token allowed an early renewal")
	}

	owner.get("/owner/subs/" + sub.ID)
	st, _, loc := owner.post(path(ids[0]), url.Values{})
	if st != http.StatusSeeOther || loc != "/owner/subs/"+sub.ID+"?ok=renew_allowed" {
		t.Fatalf("allow: %d %q\n%s", st, loc, owner.last)
	}
	got := allowedUntil(ids[0])
	if want := time.Now().Add(7 * 24 * time.Hour); got.Before(want.Add(-time.Minute)) || got.After(want.Add(time.Minute)) {
		t.Fatalf("allowed until %v, want about %v", got, want)
	}
	if !allowedUntil(ids[1]).IsZero() {
		t.Fatal("the other device was allowed too")
	}
	owner.get(loc)
	if !strings.Contains(owner.last, "Early renewal allowed") {
		t.Fatalf("no notice after allowing:\n%s", owner.last)
	}
	evs, _ := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "device.renew_allowed"})
	if len(evs) != 1 || evs[0].Detail["device"] != ids[0] || evs[0].Actor.Kind != "owner" {
		t.Fatalf("audit: %+v", evs)
	}

	// A revoked device gets no button and no permission.
	owner.get("/owner/subs/" + sub.ID)
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/devices/"+ids[1]+"/revoke", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("revoke: %d", st)
	}
	owner.get("/owner/subs/" + sub.ID)
	if strings.Contains(owner.last, path(ids[1])) {
		t.Fatal("a revoked device has an allow-renew button")
	}
	if st, _, _ := owner.post(path(ids[1]), url.Values{}); st != http.StatusConflict || !allowedUntil(ids[1]).IsZero() {
		t.Fatalf("allow for a revoked device: %d", st)
	}

	// The Chinese page names it too.
	owner.get("/lang?to=zh&back=/owner/subs/" + sub.ID)
	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, "允许提前续期") {
		t.Fatalf("the zh page lacks the button:\n%s", owner.last)
	}
}
