package ca

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/devicegate/devicegate/internal/routetable"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// lockedBuffer is a log sink the test reads while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// caIso is two stores behind one CA API: A ("shop", alice with a device)
// and B ("other", bob with a device); a proxy scoped to A, A's device
// certificate, and the CA's log.
type caIso struct {
	f          *fixture
	url        string
	log        *lockedBuffer
	b          store.Tenant
	bob        store.SubAccount
	aDev, bDev *Issued
	proxyA     *http.Client // proxy certificate of scope {A}
	deviceA    *http.Client // A's device certificate
}

// bState is what B has; refused calls leave it as it was.
func (x *caIso) bState(t *testing.T) string {
	t.Helper()
	devs, err := x.f.store.ListDevices(x.f.ctx, x.b.ID, x.bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := x.f.store.GetSubAccount(x.f.ctx, x.b.ID, x.bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := x.f.store.ListAudit(x.f.ctx, x.b.ID, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := json.Marshal([]any{sub, devs, evs})
	return string(s)
}

// refused calls and wants a 4xx status from want.
func refused(t *testing.T, c *http.Client, method, url, body string, want ...int) {
	t.Helper()
	st, out := call(t, c, method, url, body)
	if !slices.Contains(want, st) {
		t.Fatalf("%s %s: %d, want one of %v: %s", method, url, st, want, out)
	}
}

// loggedRefusal wants the CA's log (its own trail for callers that belong
// to no store, as proxies) to name the refused path and reason.
func (x *caIso) loggedRefusal(t *testing.T, path, reason string) {
	t.Helper()
	for _, line := range strings.Split(x.log.String(), "\n") {
		if strings.Contains(line, "proxy refused") && strings.Contains(line, "path="+path) && strings.Contains(line, reason) {
			return
		}
	}
	t.Fatalf("no logged refusal of %s (%s) in:\n%s", path, reason, x.log.String())
}

func caIsolationCases() map[string]struct {
	exempt string
	run    func(t *testing.T, x *caIso)
} {
	type c = struct {
		exempt string
		run    func(t *testing.T, x *caIso)
	}
	const public = "public by design: CA certificates, CRL, OCSP status by serial, health; no store data"
	// feedHides: what a proxy of scope {A} reads carries nothing of B; A's
	// device certificate is no proxy credential.
	feedHides := func(path string) func(t *testing.T, x *caIso) {
		return func(t *testing.T, x *caIso) {
			st, body := call(t, x.proxyA, "GET", x.url+path+"?since=0&wait=0s", "")
			if st != http.StatusOK {
				t.Fatalf("%s in scope: %d %s", path, st, body)
			}
			for _, s := range []string{x.b.ID, x.bob.ID, x.bDev.Device.ID, x.bDev.Device.Serial} {
				if strings.Contains(body, s) {
					t.Fatalf("%s of a proxy of scope A carries %s of B", path, s)
				}
			}
			refused(t, x.deviceA, "GET", x.url+path+"?since=0&wait=0s", "", http.StatusUnauthorized, http.StatusForbidden)
		}
	}
	return map[string]c{
		"GET /v1/roots.pem": {exempt: public},
		"GET /crl":          {exempt: public},
		"GET /crl.pem":      {exempt: public},
		"GET /crl/{name}":   {exempt: public},
		"POST /ocsp":        {exempt: public},
		"GET /ocsp/":        {exempt: public},
		"GET /healthz":      {exempt: public},
		"GET /{$}":          {exempt: public},

		// The one-time code names the sub-account; ids in the body are
		// refused, never used; B's sub-account gets nothing.
		"POST /v1/enroll": {run: func(t *testing.T, x *caIso) {
			for _, field := range []string{"tenant_id", "sub_id", "subaccount"} {
				b, _ := json.Marshal(map[string]string{"code": x.f.ticket(x.f.alice), "csr": string(newCSR(t, newKey(t), nil)), field: x.bob.ID})
				refused(t, httpClient(x.f, nil), "POST", x.url+"/v1/enroll", string(b), http.StatusBadRequest)
			}
		}},
		// The certificate names the device; ids in the body are refused.
		"POST /v1/renew": {run: func(t *testing.T, x *caIso) {
			for _, field := range []string{"device_id", "sub_id", "tenant_id"} {
				b, _ := json.Marshal(map[string]string{"csr": string(newCSR(t, newKey(t), nil)), field: x.bDev.Device.ID})
				refused(t, x.deviceA, "POST", x.url+"/v1/renew", string(b), http.StatusBadRequest)
			}
		}},
		"GET /v1/revocations": {run: feedHides("/v1/revocations")},
		"GET /v1/policy":      {run: feedHides("/v1/policy")},
		"POST /v1/audit": {run: func(t *testing.T, x *caIso) {
			rec := `{"records":[{"tenant_id":"` + x.b.ID + `","action":"proxy.allow","target":"` + x.bob.ID + `"}]}`
			refused(t, x.proxyA, "POST", x.url+"/v1/audit", rec, http.StatusForbidden)
			x.loggedRefusal(t, "/v1/audit", "does not cover this store")
			refused(t, x.deviceA, "POST", x.url+"/v1/audit", rec, http.StatusUnauthorized, http.StatusForbidden)
		}},
		"POST /v1/seen": {run: func(t *testing.T, x *caIso) {
			seen := func(tenantID string) string {
				return `{"devices":[{"tenant_id":"` + tenantID + `","device_id":"` + x.bDev.Device.ID + `","ip":"10.9.9.9"}]}`
			}
			refused(t, x.proxyA, "POST", x.url+"/v1/seen", seen(x.b.ID), http.StatusForbidden)
			x.loggedRefusal(t, "/v1/seen", "does not cover this store")
			refused(t, x.deviceA, "POST", x.url+"/v1/seen", seen(x.b.ID), http.StatusUnauthorized, http.StatusForbidden)
			// B's device under A's id: the store's lookup is by (store,
			// device), so nothing of B is touched (bState).
			if st, body := call(t, x.proxyA, "POST", x.url+"/v1/seen", seen(x.f.tenant.ID)); st >= 500 {
				t.Fatalf("seen of B's device under A: %d %s", st, body)
			}
		}},
		// An acknowledgment concerns the proxy of the certificate only:
		// another proxy's name, or a store in the body, is refused.
		"POST /v1/policy/ack": {run: func(t *testing.T, x *caIso) {
			refused(t, x.proxyA, "POST", x.url+"/v1/policy/ack", `{"proxy":"edge-b","applied_seq":0}`, http.StatusForbidden)
			x.loggedRefusal(t, "/v1/policy/ack", "names another proxy")
			refused(t, x.proxyA, "POST", x.url+"/v1/policy/ack", `{"proxy":"edge-a","applied_seq":0,"tenant_id":"`+x.b.ID+`"}`, http.StatusBadRequest)
			refused(t, x.deviceA, "POST", x.url+"/v1/policy/ack", `{"proxy":"edge-a","applied_seq":0}`, http.StatusUnauthorized, http.StatusForbidden)
		}},
		// The certificate names the proxy and its scope; a scope in the
		// body is refused.
		"POST /v1/proxy/renew": {run: func(t *testing.T, x *caIso) {
			b, _ := json.Marshal(map[string]any{"csr": string(newCSR(t, newKey(t), nil)), "stores": []string{x.b.ID}})
			refused(t, x.proxyA, "POST", x.url+"/v1/proxy/renew", string(b), http.StatusBadRequest)
			refused(t, x.deviceA, "POST", x.url+"/v1/proxy/renew", `{"csr":""}`, http.StatusUnauthorized, http.StatusForbidden)
		}},
	}
}

// TestIsolationCARoutes: every route of the CA API's table, called as
// store A's proxy or device with store B's ids, is refused (or answers
// nothing of B) and changes nothing in B; proxies' refusals are in the
// CA's log. A route without a case (or a reasoned exemption) fails.
func TestIsolationCARoutes(t *testing.T) {
	f := newFixture(t)
	logs := &lockedBuffer{}
	f.ca.opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	routes := NewServer(f.ca).Routes()
	cases := caIsolationCases()
	routetable.Covered(t, "CA route", "caIsolationCases", routes, cases)
	if t.Failed() {
		return
	}

	x := &caIso{f: f, url: startServer(t, f), log: logs}
	x.b = storetest.Tenant(t, f.store, "other")
	x.bob = f.subIn(x.b, "bob", 3)
	x.bDev = f.issue(x.bob)
	key := newKey(t)
	var err error
	if x.aDev, err = f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, key, nil)}); err != nil {
		t.Fatal(err)
	}
	x.deviceA = httpClient(f, tlsCert(x.aDev.Chain, key))
	x.proxyA = f.proxyClient(f.proxyCert("edge-a", only(f.tenant.ID)))

	ran := 0
	for _, pattern := range routes {
		c := cases[pattern]
		if c.exempt != "" {
			continue
		}
		ran++
		t.Run(pattern, func(t *testing.T) {
			before := x.bState(t)
			c.run(t, x)
			if after := x.bState(t); after != before {
				t.Errorf("B changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Logf("%d routes, %d with cross-store attempts, %d exempt", len(routes), ran, len(routes)-ran)
}
