package enroll_test

import (
	"net/http"
	"net/url"
	"testing"
)

// Sessions live in the store: a login on one portal node is valid on
// another and after a restart, and a logout on any node ends it on all.
func TestSessionsSharedByPortalNodes(t *testing.T) {
	e := newEnv(t)
	a := e.browser()
	a.ownerLogin("")
	if st, _, _ := a.get("/owner/"); st != http.StatusOK {
		t.Fatalf("node A after login: %d", st)
	}
	var old *http.Cookie
	u, _ := url.Parse(e.srv.URL)
	for _, c := range a.c.Jar.Cookies(u) {
		if c.Name == "__Host-dg_session" {
			old = c
		}
	}
	if old == nil {
		t.Fatal("no session cookie after login")
	}

	// The same browser (cookie jar) on node B, then on a restarted node C.
	for _, name := range []string{"B", "C (restart)"} {
		other := *e
		other.srv = e.portalNode()
		b := &browser{t: t, e: &other, c: a.c}
		if st, _, loc := b.get("/owner/"); st != http.StatusOK {
			t.Fatalf("node %s does not know the session: %d %s", name, st, loc)
		}
		if name == "C (restart)" {
			if st, _, _ := b.post("/logout", url.Values{}); st != http.StatusSeeOther {
				t.Fatalf("logout on node C: %d\n%s", st, b.last)
			}
		}
	}
	// The logout removed the cookie from the jar; the old id, replayed on
	// node A, must be dead on the server too.
	req, _ := http.NewRequest("GET", e.srv.URL+"/owner/", nil)
	req.AddCookie(old)
	if st, _, loc := (&browser{t: t, e: e, c: &http.Client{Transport: a.c.Transport, CheckRedirect: a.c.CheckRedirect}}).do(req); st != http.StatusSeeOther || loc != "/owner/login" {
		t.Fatalf("the logged-out session id replayed on node A: %d %s", st, loc)
	}
}
