package ca

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store"
)

// An edge proxy (policy from the feed) acknowledges the seq it applied
// through the CA, which records it under the certificate's name: after a
// revocation its report reaches the revocation's seq.
func TestPolicyAckFromFeedProxy(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	device := f.issue(f.alice)
	cred := f.proxyCert("edge-1", store.ProxyScope{All: true})
	log := slog.New(slog.DiscardHandler)
	feed := proxy.NewFeedClient(url, &tls.Config{RootCAs: f.ca.Keys().RootPool(), Certificates: []tls.Certificate{*tlsCert(cred.chain, cred.key)}}, log)
	if feed.Name() != "edge-1" {
		t.Fatalf("feed client name %q, want edge-1", feed.Name())
	}
	catalog, _ := config.DefaultCatalog()
	policy := proxy.NewPolicy(feed, catalog, log)
	policy.ReportTo(feed)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go policy.Run(ctx, 10*time.Second)
	go feed.Watch(ctx, policy)

	rv, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, device.Device.ID, store.ReasonKeyCompromise, testActor)
	if err != nil {
		t.Fatal(err)
	}
	r := waitReport(t, f, "edge-1", rv.Seq)
	if r.Via != store.ViaFeed || r.Heartbeat != api.PolicyAckEvery {
		t.Fatalf("report %+v, want via feed with the feed's heartbeat", r)
	}
}

// waitReport polls the store until proxy name reports seq >= want.
func waitReport(t *testing.T, f *fixture, name string, want int64) store.ProxyReport {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		list, err := f.store.ListProxyReports(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			if r.Name == name && r.Seq >= want {
				return r
			}
		}
	}
	t.Fatalf("proxy %s did not report seq %d within 10 s", name, want)
	return store.ProxyReport{}
}

// Only a proxy may acknowledge, only for itself, and only a seq that
// exists: a forged acknowledgment is refused and records nothing.
func TestPolicyAckRefusesForgeries(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	deviceKey := newKey(t)
	device, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, deviceKey, nil)})
	if err != nil {
		t.Fatal(err)
	}
	edge1 := f.proxyClient(f.proxyCert("edge-1", store.ProxyScope{All: true}))
	edge2 := f.proxyClient(f.proxyCert("edge-2", only(f.tenant.ID)))
	revokedCred := f.proxyCert("edge-gone", store.ProxyScope{All: true})
	if _, err := f.store.RevokeProxyCerts(f.ctx, "edge-gone", store.ReasonKeyCompromise, f.now); err != nil {
		t.Fatal(err)
	}
	revoked := f.proxyClient(revokedCred)
	deviceClient := httpClient(f, tlsCert(device.Chain, deviceKey))
	anonymous := httpClient(f, nil)
	cur, err := f.store.CurrentSeq(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ack := func(name string, seq int64) string { return fmt.Sprintf(`{"proxy":%q,"applied_seq":%d}`, name, seq) }

	for _, tc := range []struct {
		name   string
		client *http.Client
		body   string
		want   int
	}{
		{"another proxy's name", edge2, ack("edge-1", cur), http.StatusForbidden},
		{"device certificate", deviceClient, ack("edge-1", cur), http.StatusUnauthorized},
		{"no client certificate", anonymous, ack("edge-1", cur), http.StatusUnauthorized},
		{"revoked proxy certificate", revoked, ack("edge-gone", cur), http.StatusForbidden},
		{"seq beyond the newest change", edge1, ack("edge-1", cur+1), http.StatusBadRequest},
		{"negative seq", edge1, ack("edge-1", -1), http.StatusBadRequest},
		{"unknown field", edge1, `{"proxy":"edge-1","applied_seq":1,"live":true}`, http.StatusBadRequest},
		{"its own name (legitimate)", edge2, ack("edge-2", cur), http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := call(t, tc.client, "POST", url+api.PolicyAckPath, tc.body); status != tc.want {
				t.Fatalf("status %d (%s), want %d", status, body, tc.want)
			}
		})
	}
	list, err := f.store.ListProxyReports(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "edge-2" || list[0].Seq != cur || list[0].Via != store.ViaFeed {
		t.Fatalf("reports %+v, want only edge-2's at seq %d", list, cur)
	}
}
