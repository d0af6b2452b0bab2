package ca

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// A proxy without database access keeps its policy from the CA's feed
// over mTLS, sees a revocation within a second, and writes its decisions
// (and devices' last use) through the CA.
func TestPolicyFeedForProxiesWithoutDatabase(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	device := f.issue(f.alice)
	proxyKey := newKey(t)
	proxyChain, err := f.ca.IssueProxyCert(f.ctx, "edge-1", store.ProxyScope{All: true}, newCSR(t, proxyKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: f.ca.Keys().RootPool(), Certificates: []tls.Certificate{*tlsCert(proxyChain, proxyKey)}}
	log := slog.New(slog.DiscardHandler)
	feed := proxy.NewFeedClient(url, tc, log)
	catalog, _ := config.DefaultCatalog()
	policy := proxy.NewPolicy(feed, catalog, log)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	if err := policy.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	point := catalog.Permissions("operations", nil)[0]
	leaf := device.Chain[0]
	if _, reason := policy.Snapshot().Check(leaf, f.ca.TrustDomain(), point, time.Now()); reason != proxy.ReasonAllowed {
		t.Fatalf("enrolled device from the feed: %s", reason)
	}

	// Revoked at the CA: the watch kicks a sync, well within a second
	// although the proxy's own poll runs only every 10 s.
	go policy.Run(ctx, 10*time.Second)
	go feed.Watch(ctx, policy)
	waitParked(t, f, 1) // the watch waits for a change
	start := time.Now()
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, device.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	for {
		if _, reason := policy.Snapshot().Check(leaf, f.ca.TrustDomain(), point, time.Now()); reason != proxy.ReasonAllowed {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("revocation did not reach the feed-fed proxy within 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("revocation reached the feed-fed proxy after %v", time.Since(start).Round(time.Millisecond))

	// Decisions and last use go to the CA's store.
	auditor := proxy.NewAuditor(feed, 16, log)
	go auditor.Run(ctx)
	other := f.issue(f.alice)
	g := proxy.Grant{SubName: "shop:alice"}
	g.Principal.TenantID, g.Principal.DeviceID = f.tenant.ID, other.Device.ID
	auditor.Record("10.1.2.3", g, point, "/orders/sold", proxy.ReasonAllowed)
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, _ := f.store.ListAudit(f.ctx, f.tenant.ID, store.AuditFilter{Action: "proxy."})
		d, _ := f.store.GetDevice(f.ctx, f.tenant.ID, other.Device.ID)
		if len(evs) == 1 && d.LastSeenIP == "10.1.2.3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit %+v, last seen %q", evs, d.LastSeenIP)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The feed never carries secrets, and only proxies may use it or upload.
func TestPolicyFeedRefusals(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	device := f.issue(f.alice)
	deviceKey := newKey(t)
	deviceIssued, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, deviceKey, nil)})
	if err != nil {
		t.Fatal(err)
	}
	proxyKey := newKey(t)
	proxyChain, _ := f.ca.IssueProxyCert(f.ctx, "edge-1", store.ProxyScope{All: true}, newCSR(t, proxyKey, nil))
	proxyClient := httpClient(f, tlsCert(proxyChain, proxyKey))

	resp, err := proxyClient.Get(url + "/v1/policy?since=0&wait=0s")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), device.Device.ID) {
		t.Fatalf("policy page: %d %s", resp.StatusCode, body)
	}
	// Field names, and the phone secret as it is and as JSON encodes bytes.
	for _, secret := range []string{"PasswordHash", "TOTPSecret", storetest.TOTPSecret, base64.StdEncoding.EncodeToString([]byte(storetest.TOTPSecret))} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("the policy feed carries %s", secret)
		}
	}

	before := f.counts(f.alice)
	audit := `{"records":[{"tenant_id":"` + f.tenant.ID + `","action":"device.revoke","target":"shop:alice"}]}`
	tests := []struct {
		name   string
		client *http.Client
		method string
		path   string
		body   string
		status int
	}{
		{"policy without a certificate", httpClient(f, nil), "GET", "/v1/policy?since=0&wait=0s", "", 401},
		{"policy with a device certificate", httpClient(f, tlsCert(deviceIssued.Chain, deviceKey)), "GET", "/v1/policy?since=0&wait=0s", "", 401},
		{"bad since", proxyClient, "GET", "/v1/policy?since=-1", "", 400},
		{"audit with a device certificate", httpClient(f, tlsCert(deviceIssued.Chain, deviceKey)), "POST", "/v1/audit", `{"records":[]}`, 401},
		{"audit event that is not a proxy decision", proxyClient, "POST", "/v1/audit", audit, 400},
		{"empty audit upload", proxyClient, "POST", "/v1/audit", `{"records":[]}`, 400},
		{"seen with a device certificate", httpClient(f, tlsCert(deviceIssued.Chain, deviceKey)), "POST", "/v1/seen", `{"devices":[]}`, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	if after := f.counts(f.alice); after != before {
		t.Fatalf("refused uploads changed the store: %+v -> %+v", before, after)
	}
}
