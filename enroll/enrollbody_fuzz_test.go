package enroll_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzStaffEnrollBody: whatever JSON body a logged-in staff member's page
// sends to POST /staff/api/enroll, the portal answers below 500 with a JSON
// body, and a refused request takes no quota slot.
func FuzzStaffEnrollBody(f *testing.F) {
	e := newEnv(f)
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub("fuzz", "operations", "staff-password-1")
	staffSecret := owner.protect(sub, "1")
	staff := e.browser()
	staff.staffLogin("shop:fuzz", "staff-password-1", staffSecret)
	staff.get("/staff/enroll")
	m := metaCSRF.FindStringSubmatch(staff.last)
	if m == nil {
		f.Fatal("enroll page without CSRF meta")
	}
	token := m[1]
	good, _ := json.Marshal(map[string]string{"csr": string(csrPEM(f)), "label": "pc"})
	for _, s := range []string{string(good), `{"csr":"x","label":"pc"}`, `{"csr":1}`, `{"csr":"","label":"\xff"}`, `{"x":1}`, `[]`, ``, `{} {}`,
		`{"csr":"` + strings.Repeat("A", 40<<10) + `"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e.t, staff.t, owner.t = t, t, t
		before, err := e.st.CountActiveDevices(e.ctx, e.tenant.ID, sub.ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", staff.url("/staff/api/enroll"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", token)
		status, out, _ := staff.do(req)
		if status >= 500 {
			t.Fatalf("%q: %d %s", body, status, out)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%q: %d answered %q, not JSON", body, status, out)
		}
		if status == http.StatusOK {
			return // the one slot was used: later inputs are refused
		}
		if v["error"] == nil {
			t.Fatalf("%q: %d without an error", body, status)
		}
		after, err := e.st.CountActiveDevices(e.ctx, e.tenant.ID, sub.ID, time.Now())
		if err != nil || after != before {
			t.Fatalf("%q: refused (%d) but active devices %d -> %d (%v)", body, status, before, after, err)
		}
	})
}
