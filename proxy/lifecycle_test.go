package proxy

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
)

// fakeClock is the gateway's injected clock (Options.Now).
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time       { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time)      { c.ns.Store(t.UnixNano()) }
func newFakeClock(t time.Time) *fakeClock { c := &fakeClock{}; c.set(t); return c }

// A temporary sub-account's high-risk pages close at its window's end by
// the proxy's own clock: no sync, no revocation, nobody acting.
func TestTemporaryWindowEndsAtProxy(t *testing.T) {
	start := time.Now()
	clock := newFakeClock(start)
	// Staleness is judged by the same clock: allow the jumps below.
	e := newEnvWith(t, 30*24*time.Hour, nil, func(o *Options) { o.Now = clock.now })
	alice, err := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(10 * 24 * time.Hour).Truncate(time.Second)
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, alice.ID, store.Window{NotBefore: start.Add(-time.Hour), NotAfter: end}, actor); err != nil {
		t.Fatal(err)
	}
	// The certificate ends with the window, as the CA caps it.
	cert := e.device("alice", testpki.LeafOptions{NotAfter: end})
	c := e.client(&cert)
	e.login(c, "alice")
	zh := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		req.Header.Set("Accept-Language", "zh-CN")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	for _, tc := range []struct {
		name   string
		at     time.Time
		status int
		reason string
	}{
		{"inside the window", start, 200, ""},
		{"a second before the end", end.Add(-time.Second), 200, ""},
		{"past the end (certificate ends too)", end.Add(time.Second), 403, ReasonExpired.String()},
		{"back inside", start.Add(time.Hour), 200, ""},
	} {
		clock.set(tc.at)
		status, reason, _ := get(t, c, e.url+"/orders/sold")
		if status != tc.status || reason != tc.reason {
			t.Fatalf("%s: %d %q, want %d %q", tc.name, status, reason, tc.status, tc.reason)
		}
	}

	// The owner ends the promotion early: the certificate is still valid,
	// the window decides; a normal page keeps working.
	early := start.Add(2 * 24 * time.Hour)
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, alice.ID, store.Window{NotBefore: start.Add(-time.Hour), NotAfter: early}, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	clock.set(early.Add(-time.Second))
	if status, reason, _ := get(t, c, e.url+"/orders/sold"); status != 200 {
		t.Fatalf("before the shortened end: %d %q", status, reason)
	}
	clock.set(early)
	status, reason, body := get(t, c, e.url+"/orders/sold")
	if status != 403 || reason != ReasonOutsideWindow.String() || !strings.Contains(body, "temporary sub-account is outside its validity period") {
		t.Fatalf("at the shortened end: %d %q %q", status, reason, body)
	}
	if body := zh("/orders/sold"); !strings.Contains(body, "该临时子账号不在有效期内") || !strings.Contains(body, "抱歉，无法通过验证") {
		t.Fatalf("zh refusal page: %q", body)
	}
	if status, _, _ := get(t, c, e.url+"/products"); status != 200 {
		t.Fatalf("a normal page after the window: %d", status)
	}
	// Before a window starts is refused the same way.
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, alice.ID, store.Window{NotBefore: early.Add(time.Hour), NotAfter: end}, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if status, reason, _ := get(t, c, e.url+"/orders/sold"); status != 403 || reason != ReasonOutsideWindow.String() {
		t.Fatalf("before the window starts: %d %q", status, reason)
	}
	// Extended (an owner action): works again at once after the sync.
	if _, err := e.st.SetValidity(e.ctx, e.tenant.ID, alice.ID, store.Window{NotBefore: start.Add(-time.Hour), NotAfter: end}, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if status, reason, _ := get(t, c, e.url+"/orders/sold"); status != 200 {
		t.Fatalf("after the extension: %d %q", status, reason)
	}
}

// An owner's edit of a position (for this store) reaches the proxy like a
// revocation: a policy sync later the position's sub-accounts lose or gain
// the points; supplementary points still add to the position's.
func TestPositionEditReachesProxy(t *testing.T) {
	e := newEnv(t, time.Minute)
	cert := e.device("alice", testpki.LeafOptions{}) // "operations": orders.sold, shipping, ...
	c := e.client(&cert)
	e.login(c, "alice")
	alice, _ := e.st.GetSubAccountByName(e.ctx, e.tenant.ID, "alice")
	otherStore, err := e.st.CreateTenant(e.ctx, store.NewTenant{Name: "other"}, actor)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		e.sync()
		for path, reason := range want {
			status, got, body := get(t, c, e.url+path)
			if got != reason || (reason == "" && status != 200) {
				t.Fatalf("%s: %s: %d %q, want %q", step, path, status, got, reason)
			}
			if reason == ReasonNoPermission.String() && !strings.Contains(body, "position of this sub-account does not include") {
				t.Fatalf("%s: refusal page without the hint: %q", step, body)
			}
		}
	}
	check("catalog defaults", map[string]string{"/orders/sold": "", "/shipping": "", "/members": ReasonNoPermission.String()})

	// Another store's edit of the same position changes nothing here.
	if _, err := e.st.SetPosition(e.ctx, otherStore.ID, "operations", []string{"products"}, actor); err != nil {
		t.Fatal(err)
	}
	check("other store's edit", map[string]string{"/orders/sold": "", "/shipping": ""})

	if _, err := e.st.SetPosition(e.ctx, e.tenant.ID, "operations", []string{"orders.sold", "products", "members"}, actor); err != nil {
		t.Fatal(err)
	}
	check("edited position", map[string]string{"/orders/sold": "", "/shipping": ReasonNoPermission.String(), "/members": ""})

	if _, err := e.st.SetRole(e.ctx, e.tenant.ID, alice.ID, "operations", []string{"shipping"}, actor); err != nil {
		t.Fatal(err)
	}
	check("supplementary point", map[string]string{"/shipping": "", "/members": ""})

	if _, err := e.st.SetPosition(e.ctx, e.tenant.ID, "operations", nil, actor); err != nil {
		t.Fatal(err)
	}
	check("edited to nothing", map[string]string{"/orders/sold": ReasonNoPermission.String(), "/shipping": ""})

	if err := e.st.ResetPosition(e.ctx, e.tenant.ID, "operations", actor); err != nil {
		t.Fatal(err)
	}
	check("reset", map[string]string{"/orders/sold": "", "/shipping": "", "/members": ReasonNoPermission.String()})
}

// A proxy fed by the CA gets the store's points of a position through the
// feed's decision fields, "edited to nothing" included.
func TestPositionFeedCarriesStorePoints(t *testing.T) {
	catalog, err := config.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	page := api.PolicyPage{Seq: 7, SubAccounts: []api.PolicySubAccount{
		{TenantID: "t", ID: "a", FullName: "shop:a", Status: "active", Role: "operations"},
		{TenantID: "t", ID: "b", FullName: "shop:b", Status: "active", Role: "operations", RoleEdited: true, RolePoints: []string{"members"}, Grants: []string{"reports"}},
		{TenantID: "t", ID: "c", FullName: "shop:c", Status: "active", Role: "operations", RoleEdited: true},
	}}
	snap := (&Snapshot{devices: map[string]deviceState{}, subs: map[string]subState{}, active: map[string]int{}}).apply(policyChanges(page), catalog)
	perms := func(id string) []string {
		var out []string
		for k := range snap.subs[id].perms {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	ops, _ := catalog.Role("operations")
	if got, want := perms("a"), slices.Sorted(slices.Values(ops.Permissions)); !slices.Equal(got, want) {
		t.Fatalf("not edited: %v, want the catalog's %v", got, want)
	}
	if got := perms("b"); !slices.Equal(got, []string{"members", "reports"}) {
		t.Fatalf("edited: %v", got)
	}
	if got := perms("c"); len(got) != 0 {
		t.Fatalf("edited to nothing: %v", got)
	}
}
