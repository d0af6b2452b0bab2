package enroll_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// renewAPI posts a CSR to a device's renewal as the renewal page's script
// does (CSRF token from the page's meta).
func (b *browser) renewAPI(devID string, csr []byte) (int, map[string]any) {
	b.t.Helper()
	b.get("/staff/enroll")
	m := metaCSRF.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("enroll page without CSRF meta:\n%s", b.last)
	}
	tok := m[1]
	body, _ := json.Marshal(map[string]string{"csr": string(csr)})
	req, _ := http.NewRequest("POST", b.url("/staff/api/devices/"+devID+"/renew"), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", tok)
	st, out, _ := b.do(req)
	var v map[string]any
	_ = json.Unmarshal([]byte(out), &v)
	return st, v
}

// TestPortalRenewal: far from its end a device has no renewal button and
// its renewal is refused (nothing changes); once the owner allowed an early
// renewal, the staff page offers "renew on this computer", the renewal page
// keeps the device's label, and the browser's new key gets a certificate
// for the same device and slot; the lost answer's retry (same CSR) gets the
// same certificate again; the old serial is revoked as superseded. The
// owner console lists devices ending within 30 days.
func TestPortalRenewal(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	ownerSecret := owner.ownerLogin("")
	sub := owner.newSub("小红", "customer-service", "staff-password-1")
	staffSecret := owner.protect(sub, "1")
	staff := e.browser()
	staff.staffLogin("shop:小红", "staff-password-1", staffSecret)
	if st, v := staff.enroll(csrPEM(t), "front desk", true); st != http.StatusOK {
		t.Fatalf("enroll: %d %v", st, v)
	}
	devs, _ := e.st.ListDevices(e.ctx, e.tenant.ID, sub.ID)
	dev := devs[0]

	staff.get("/staff/")
	if strings.Contains(staff.last, "/staff/devices/"+dev.ID+"/renew") {
		t.Fatal("a certificate far from its end has a renewal button")
	}
	if st, _, _ := staff.get("/staff/devices/" + dev.ID + "/renew"); st != http.StatusConflict {
		t.Fatalf("renewal page far from the end: %d, want 409", st)
	}
	if st, v := staff.renewAPI(dev.ID, csrPEM(t)); st != http.StatusForbidden {
		t.Fatalf("renewal far from the end: %d %v, want 403", st, v)
	}
	if d, _ := e.st.GetDevice(e.ctx, e.tenant.ID, dev.ID); d.Serial != dev.Serial {
		t.Fatal("a refused renewal changed the device")
	}

	owner.get("/owner/subs/" + sub.ID)
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/devices/"+dev.ID+"/allow-renew", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("allow-renew: %d\n%s", st, owner.last)
	}
	staff.get("/staff/")
	if !strings.Contains(staff.last, "/staff/devices/"+dev.ID+"/renew") {
		t.Fatalf("the staff page offers no renewal after the owner allowed it:\n%s", staff.last)
	}
	if st, body, _ := staff.get("/staff/devices/" + dev.ID + "/renew"); st != http.StatusOK ||
		!strings.Contains(body, `name="dg-enroll-api" content="/staff/api/devices/`+dev.ID+`/renew"`) || !strings.Contains(body, `content="front desk"`) {
		t.Fatalf("renewal page: %d\n%s", st, body)
	}
	csr := csrPEM(t)
	st, v := staff.renewAPI(dev.ID, csr)
	if st != http.StatusOK || v["device_id"] != dev.ID || v["serial"] == dev.Serial || v["installed"] != float64(1) {
		t.Fatalf("renewal: %d %v", st, v)
	}
	again, v2 := staff.renewAPI(dev.ID, csr)
	if again != http.StatusOK || v2["serial"] != v["serial"] || v2["certificate"] != v["certificate"] {
		t.Fatalf("retry of a lost renewal: %d %v, want the same certificate", again, v2)
	}
	if st, v3 := staff.renewAPI(dev.ID, csrPEM(t)); st == http.StatusOK {
		t.Fatalf("a second renewal with another key went through: %v", v3)
	}
	revs, err := e.st.RevocationsSince(e.ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	superseded := false
	for _, rv := range revs {
		superseded = superseded || rv.Serial == dev.Serial && rv.Reason == store.ReasonSuperseded
	}
	if !superseded {
		t.Fatal("the old serial is not revoked as superseded")
	}

	// The owner console lists the device once it ends within 30 days.
	owner.get("/owner/")
	if strings.Contains(owner.last, `id="expiring"`) {
		t.Fatal("a fresh certificate is listed as expiring")
	}
	e.now = e.now.Add(340 * 24 * time.Hour)
	owner = e.browser() // the first session has long ended
	owner.ownerLogin(ownerSecret)
	owner.get("/owner/")
	if !strings.Contains(owner.last, `id="expiring"`) || !strings.Contains(owner.last, "front desk") {
		t.Fatalf("the owner console does not list the device ending soon:\n%s", owner.last)
	}
}
