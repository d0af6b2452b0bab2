package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// atomicClock is the CA's clock in tests that move it while the server
// runs.
type atomicClock struct{ us atomic.Int64 }

func (c *atomicClock) Now() time.Time          { return time.UnixMicro(c.us.Load()) }
func (c *atomicClock) Set(t time.Time)         { c.us.Store(t.UnixMicro()) }
func (c *atomicClock) Advance(d time.Duration) { c.us.Add(d.Microseconds()) }

func (f *fixture) atomicClock() *atomicClock {
	c := &atomicClock{}
	c.Set(f.now)
	f.ca.opts.Now = c.Now
	return c
}

// proxyCred is a proxy certificate and key issued for a test.
type proxyCred struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

func (p proxyCred) serial() string { return SerialHex(p.chain[0]) }

func (f *fixture) proxyCert(name string, scope store.ProxyScope) proxyCred {
	f.t.Helper()
	key := newKey(f.t)
	chain, err := f.ca.IssueProxyCert(f.ctx, name, scope, newCSR(f.t, key, nil))
	if err != nil {
		f.t.Fatal(err)
	}
	return proxyCred{chain, key}
}

func (f *fixture) proxyClient(p proxyCred) *http.Client {
	return httpClient(f, tlsCert(p.chain, p.key))
}

func only(ids ...string) store.ProxyScope { return store.ProxyScope{Stores: ids} }

// call sends one request and returns status and body.
func call(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A revoked, unknown or expired proxy certificate is refused on its next
// request to every feed endpoint (403, nothing written), an open long
// poll of a revoked proxy is cut, and the serial is on the CRL.
func TestProxyCertRevokedRefusedAtOnce(t *testing.T) {
	f := newFixture(t)
	clock := f.atomicClock()
	url := startServer(t, f)
	device := f.issue(f.alice)
	// Run notices revocations made by other processes (the CLI). It is
	// stopped and awaited before the temporary CA directory is removed: it
	// writes the CRL there, and a write after the test ended failed the
	// directory's removal ("directory not empty").
	ctx, cancel := context.WithCancel(f.ctx)
	stopped := make(chan struct{})
	go func() { f.ca.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })

	// Signed by the CA but never recorded (e.g. a record lost, or a
	// certificate made outside IssueProxyCert).
	unknownKey := newKey(t)
	csr, _ := ParseCSR(newCSR(t, unknownKey, nil), false)
	unknownChain, err := f.ca.cur.Load().signer.sign(f.ctx, csr, leafSpec{CommonName: "proxy:ghost", URI: identity.ProxyURI(f.ca.TrustDomain(), "ghost").String(),
		NotBefore: f.now.Add(-time.Minute), NotAfter: f.now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	unknown := proxyCred{unknownChain, unknownKey}
	revokedByCA := f.proxyCert("edge-ca", only(f.tenant.ID))
	if _, err := f.ca.RevokeProxy(f.ctx, revokedByCA.serial(), store.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	revokedByCLI := f.proxyCert("edge-cli", only(f.tenant.ID))
	if _, err := f.store.RevokeProxyCerts(f.ctx, "edge-cli", store.ReasonKeyCompromise, f.now); err != nil {
		t.Fatal(err)
	}
	good := f.proxyCert("edge-1", only(f.tenant.ID))

	audit := `{"records":[{"tenant_id":"` + f.tenant.ID + `","action":"proxy.allow","target":"shop:alice"}]}`
	seen := `{"devices":[{"tenant_id":"` + f.tenant.ID + `","device_id":"` + device.Device.ID + `","ip":"10.9.9.9"}]}`
	endpoints := []struct{ method, path, body string }{
		{"GET", "/v1/policy?since=0&wait=0s", ""},
		{"GET", "/v1/revocations?since=0&wait=0s", ""},
		{"POST", "/v1/audit", audit},
		{"POST", "/v1/seen", seen},
	}
	before := f.counts(f.alice)
	for _, tc := range []struct {
		name string
		cred proxyCred
	}{
		{"unknown serial", unknown},
		{"revoked through the CA", revokedByCA},
		{"revoked in the store (CLI)", revokedByCLI},
	} {
		for _, ep := range endpoints {
			t.Run(tc.name+" "+ep.path, func(t *testing.T) {
				if status, body := call(t, f.proxyClient(tc.cred), ep.method, url+ep.path, ep.body); status != http.StatusForbidden {
					t.Fatalf("status %d, want 403: %s", status, body)
				}
			})
		}
	}
	if after := f.counts(f.alice); after != before {
		t.Fatalf("refused proxies changed the store: %+v -> %+v", before, after)
	}
	// The legitimate proxy passes everywhere.
	for _, ep := range endpoints {
		if status, body := call(t, f.proxyClient(good), ep.method, url+ep.path, ep.body); status/100 != 2 {
			t.Fatalf("active proxy %s: %d %s", ep.path, status, body)
		}
	}

	// Both revoked serials are on the CRL (the CLI's after Run notices).
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		der, _ := f.ca.CRL()
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		onCRL := map[string]bool{}
		for _, e := range crl.RevokedCertificateEntries {
			onCRL[e.SerialNumber.Text(16)] = true
		}
		if onCRL[good.serial()] {
			t.Fatal("an active proxy certificate is on the CRL")
		}
		if onCRL[revokedByCA.serial()] && onCRL[revokedByCLI.serial()] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRL entries %v", onCRL)
		}
	}

	// An open long poll is cut when its proxy is revoked in the store.
	_, page := getFeed(t, f.proxyClient(good), url+"/v1/revocations?since=0&wait=0s")
	for _, path := range []string{"/v1/policy", "/v1/revocations"} {
		t.Run("long poll "+path, func(t *testing.T) {
			p := f.proxyCert("edge-poll", only(f.tenant.ID))
			done := make(chan int, 1)
			go func() {
				status, _, _ := fetchFeed(f.proxyClient(p), url+path+"?since="+itoa(page.Seq+1000)+"&wait=30s")
				done <- status // 0: no answer
			}()
			waitParked(t, f, 1)
			start := time.Now()
			if _, err := f.store.RevokeProxyCerts(f.ctx, p.serial(), store.ReasonKeyCompromise, f.now); err != nil {
				t.Fatal(err)
			}
			select {
			case status := <-done:
				if status != http.StatusForbidden {
					t.Fatalf("cut long poll: status %d, want 403", status)
				}
				t.Logf("long poll of a revoked proxy cut after %v", time.Since(start).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("the long poll of a revoked proxy stays open")
			}
		})
	}

	// Expired by the record (the CA's clock past not_after): refused.
	clock.Advance(ProxyCertValidity + time.Minute)
	if status, _ := call(t, f.proxyClient(good), "GET", url+"/v1/policy?since=0&wait=0s", ""); status != http.StatusForbidden {
		t.Fatalf("expired proxy certificate: status %d, want 403", status)
	}
}

// A proxy reads and writes only for the stores of its scope; "every
// store" must have been asked for.
func TestProxyScope(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	other := storetest.Tenant(t, f.store, "other")
	bob := f.subIn(other, "bob", 3)
	shopDev, otherDev := f.issue(f.alice), f.issue(bob)
	shopGone, otherGone := f.issue(f.alice), f.issue(bob)
	for _, d := range []*Issued{shopGone, otherGone} {
		if _, err := f.ca.RevokeDevice(f.ctx, d.Device.TenantID, d.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.ca.IssueProxyCert(f.ctx, "edge-none", store.ProxyScope{}, newCSR(t, newKey(t), nil)); err == nil {
		t.Fatal("a proxy certificate without a scope was issued")
	}
	scoped := f.proxyClient(f.proxyCert("edge-shop", only(f.tenant.ID)))
	all := f.proxyClient(f.proxyCert("edge-all", store.ProxyScope{All: true}))

	for _, tc := range []struct {
		name      string
		client    *http.Client
		see, hide []string
	}{
		{"scoped", scoped, []string{shopDev.Device.ID, shopGone.Device.Serial, "alice"}, []string{otherDev.Device.ID, otherGone.Device.Serial, "bob", other.ID}},
		{"every store", all, []string{shopDev.Device.ID, otherDev.Device.ID, shopGone.Device.Serial, otherGone.Device.Serial, "bob"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, policy := call(t, tc.client, "GET", url+"/v1/policy?since=0&wait=0s", "")
			_, revs := call(t, tc.client, "GET", url+"/v1/revocations?since=0&wait=0s", "")
			both := policy + revs
			for _, s := range tc.see {
				if !strings.Contains(both, s) {
					t.Errorf("feed lacks %s", s)
				}
			}
			for _, s := range tc.hide {
				if strings.Contains(both, s) {
					t.Errorf("feed carries %s of a store out of scope", s)
				}
			}
		})
	}

	record := func(tenantID string) string {
		return `{"records":[{"tenant_id":"` + tenantID + `","action":"proxy.allow","target":"x"}]}`
	}
	seen := func(tenantID, deviceID string) string {
		return `{"devices":[{"tenant_id":"` + tenantID + `","device_id":"` + deviceID + `","ip":"10.1.1.1"}]}`
	}
	beforeOther, beforeShop := f.counts(bob), f.counts(f.alice)
	for _, tc := range []struct{ name, path, body string }{
		{"audit for another store", "/v1/audit", record(other.ID)},
		{"audit mixing stores", "/v1/audit", strings.Replace(record(f.tenant.ID), "]}", `,{"tenant_id":"`+other.ID+`","action":"proxy.deny","target":"y"}]}`, 1)},
		{"seen for another store", "/v1/seen", seen(other.ID, otherDev.Device.ID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := call(t, scoped, "POST", url+tc.path, tc.body); status != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", status, body)
			}
		})
	}
	if d, _ := f.store.GetDevice(f.ctx, other.ID, otherDev.Device.ID); d.LastSeenIP != "" {
		t.Fatal("an out-of-scope seen report was written")
	}
	if f.counts(bob) != beforeOther || f.counts(f.alice) != beforeShop {
		t.Fatal("refused uploads changed the store")
	}
	// In scope: accepted.
	if status, body := call(t, scoped, "POST", url+"/v1/audit", record(f.tenant.ID)); status != http.StatusNoContent {
		t.Fatalf("audit in scope: %d %s", status, body)
	}
	if status, body := call(t, scoped, "POST", url+"/v1/seen", seen(f.tenant.ID, shopDev.Device.ID)); status != http.StatusNoContent {
		t.Fatalf("seen in scope: %d %s", status, body)
	}
	if status, _ := call(t, all, "POST", url+"/v1/seen", seen(other.ID, otherDev.Device.ID)); status != http.StatusNoContent {
		t.Fatalf("seen of an every-store proxy: %d", status)
	}
}

// The CA, not the proxy, says who appended an audit entry and when: the
// proxy's identity and the CA's receive time. What the proxy reports is
// kept in clearly named details.
func TestProxyUploadActorAndTime(t *testing.T) {
	f := newFixture(t)
	clock := f.atomicClock()
	url := startServer(t, f)
	device := f.issue(f.alice)
	p := f.proxyClient(f.proxyCert("edge-1", only(f.tenant.ID)))
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	clock.Advance(time.Hour) // the CA's receive time differs from the issue time

	// The upload cannot name an actor or a receive time: such fields are
	// refused, nothing is written.
	for _, forged := range []string{`"actor":{"kind":"owner","name":"owner"}`, `"entry":{"actor":{"kind":"owner"}}`, `"received_at":"2001-02-03T04:05:06Z"`} {
		body := `{"records":[{"tenant_id":"` + f.tenant.ID + `","action":"proxy.allow","target":"shop:alice",` + forged + `}]}`
		if status, out := call(t, p, "POST", url+"/v1/audit", body); status != http.StatusBadRequest {
			t.Fatalf("upload with %s: %d %s", forged, status, out)
		}
	}
	body, _ := json.Marshal(api.AuditUpload{Records: []api.AuditRecord{{TenantID: f.tenant.ID,
		Time: past, ClientIP: "10.0.0.9", Action: "proxy.allow", Target: "shop:alice", Outcome: "certificate_valid",
		Detail: map[string]string{"observed_at": "forged", "device": device.Device.ID},
	}}})
	if status, out := call(t, p, "POST", url+"/v1/audit", string(body)); status != http.StatusNoContent {
		t.Fatalf("upload: %d %s", status, out)
	}
	evs, err := f.store.ListAudit(f.ctx, f.tenant.ID, store.AuditFilter{Action: "proxy."})
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit: %d %v", len(evs), err)
	}
	want := clock.Now().Truncate(time.Microsecond)
	for _, e := range evs {
		if e.Actor.Kind != "proxy" || e.Actor.Name != "proxy:edge-1" || e.Actor.UA != "" {
			t.Errorf("actor %+v, want proxy:edge-1", e.Actor)
		}
		if !e.Time.Equal(want) {
			t.Errorf("time %v, want the CA's %v", e.Time, want)
		}
		if e.Detail["observed_at"] != past.Format(time.RFC3339Nano) || e.Detail["client_ip"] != "10.0.0.9" || e.Detail["device"] != device.Device.ID {
			t.Errorf("details %v", e.Detail)
		}
	}
	if err := f.store.VerifyAudit(f.ctx, f.tenant.ID); err != nil {
		t.Fatal(err)
	}

	// Last seen: the CA's time; a proxy cannot state one.
	forged := `{"devices":[{"tenant_id":"` + f.tenant.ID + `","device_id":"` + device.Device.ID + `","at":"2001-02-03T04:05:06Z","ip":"10.0.0.9"}]}`
	if status, out := call(t, p, "POST", url+"/v1/seen", forged); status != http.StatusBadRequest {
		t.Fatalf("seen with a time: %d %s", status, out)
	}
	body, _ = json.Marshal(api.SeenUpload{Devices: []api.SeenDevice{{TenantID: f.tenant.ID, DeviceID: device.Device.ID, IP: "10.0.0.9"}}})
	if status, out := call(t, p, "POST", url+"/v1/seen", string(body)); status != http.StatusNoContent {
		t.Fatalf("seen: %d %s", status, out)
	}
	d, _ := f.store.GetDevice(f.ctx, f.tenant.ID, device.Device.ID)
	if !d.LastSeenAt.Equal(want) || d.LastSeenIP != "10.0.0.9" {
		t.Fatalf("last seen %v %q, want %v", d.LastSeenAt, d.LastSeenIP, want)
	}
}

// A proxy renews its own certificate over mTLS in the second half of its
// life: same name and scope; a revoked or expired certificate cannot.
func TestProxyRenew(t *testing.T) {
	f := newFixture(t)
	clock := f.atomicClock()
	url := startServer(t, f)
	renew := func(c *http.Client) (int, api.ProxyCertificate) {
		b, _ := json.Marshal(api.ProxyRenewRequest{CSR: string(newCSR(t, newKey(t), nil))})
		resp, err := c.Post(url+"/v1/proxy/renew", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out api.ProxyCertificate
		if resp.StatusCode == http.StatusCreated {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, out
	}
	edge := f.proxyCert("edge-1", only(f.tenant.ID))
	revoked := f.proxyCert("edge-2", only(f.tenant.ID))
	if _, err := f.ca.RevokeProxy(f.ctx, "edge-2", store.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	device := f.issue(f.alice)
	_ = device

	if status, _ := renew(f.proxyClient(edge)); status != http.StatusBadRequest {
		t.Fatalf("renewal right after issue: %d, want 400", status)
	}
	clock.Advance(ProxyCertValidity * 2 / 3)
	for _, tc := range []struct {
		name   string
		client *http.Client
		status int
	}{
		{"no certificate", httpClient(f, nil), http.StatusUnauthorized},
		{"revoked", f.proxyClient(revoked), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, _ := renew(tc.client); status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
		})
	}
	status, out := renew(f.proxyClient(edge))
	if status != http.StatusCreated {
		t.Fatalf("renewal at 2/3: %d", status)
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := f.store.GetProxyCert(f.ctx, SerialHex(leaf))
	if err != nil || rec.Name != "edge-1" || rec.RenewedFrom != edge.serial() || rec.Scope.All || len(rec.Scope.Stores) != 1 || rec.Scope.Stores[0] != f.tenant.ID {
		t.Fatalf("renewed record %+v %v", rec, err)
	}
	if name, err := identity.ProxyFromCertificate(leaf, f.ca.TrustDomain()); err != nil || name != "edge-1" || out.Serial != rec.Serial ||
		leaf.NotAfter.Sub(clock.Now()) > ProxyCertValidity || !strings.Contains(out.Chain, strings.TrimSpace(out.Certificate)) {
		t.Fatalf("renewed certificate: %q %v %+v", name, err, out)
	}
	// Past its end the old certificate renews nothing.
	clock.Advance(ProxyCertValidity)
	if status, _ := renew(f.proxyClient(edge)); status != http.StatusForbidden {
		t.Fatalf("renewal of an expired certificate: %d, want 403", status)
	}
}

// The edge proxy's feed client renews its own certificate at 2/3 of its
// life (clock injected), writes it to its credentials directory and uses
// it for new connections at once: with the old serial revoked it still
// reads the feed. A revoked certificate renews nothing and the files stay.
func TestFeedClientRenewsItsCertificate(t *testing.T) {
	f := newFixture(t)
	clock := f.atomicClock()
	// Issued five days ago (in the CA's clock), so the renewed certificate
	// is valid in real time too (TLS checks with the wall clock).
	clock.Set(time.Now().Add(-5 * 24 * time.Hour))
	url := startServer(t, f)
	edge := f.proxyCert("edge-1", only(f.tenant.ID))
	dir := t.TempDir()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(edge.key)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	var chain []byte
	for _, c := range edge.chain {
		chain = append(chain, pemCert(c)...)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), chain, 0o644)
	cert, err := proxy.LoadFeedCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	feed := proxy.NewFeedClient(url, &tls.Config{RootCAs: f.ca.Keys().RootPool(), Certificates: []tls.Certificate{cert}}, slog.New(slog.DiscardHandler))
	fileSerial := func() string {
		c, err := proxy.LoadFeedCertificate(dir)
		if err != nil {
			t.Fatal(err)
		}
		return SerialHex(c.Leaf)
	}

	// Not due: nothing happens.
	due := edge.chain[0].NotBefore.Add(edge.chain[0].NotAfter.Sub(edge.chain[0].NotBefore) * 2 / 3)
	if next, err := feed.RenewIfDue(f.ctx, dir, clock.Now()); err != nil || !next.Equal(due) || fileSerial() != edge.serial() {
		t.Fatalf("before 2/3: next %v (want %v), %v", next, due, err)
	}
	// Due: renewed, written, used.
	clock.Set(due.Add(time.Minute))
	next, err := feed.RenewIfDue(f.ctx, dir, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	renewed := fileSerial()
	rec, err := f.store.GetProxyCert(f.ctx, renewed)
	if err != nil || renewed == edge.serial() || rec.RenewedFrom != edge.serial() || rec.Name != "edge-1" || !next.After(clock.Now()) {
		t.Fatalf("renewed %s: %+v %v, next %v", renewed, rec, err, next)
	}
	if _, err := os.Stat(filepath.Join(dir, "key.pem.next")); !os.IsNotExist(err) {
		t.Fatal("key.pem.next left behind")
	}
	if _, err := f.ca.RevokeProxy(f.ctx, edge.serial(), store.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.PolicyChangesSince(f.ctx, 0); err != nil {
		t.Fatalf("the feed with the renewed certificate: %v", err)
	}

	// Revoked: the renewal is refused and the files are kept.
	if _, err := f.ca.RevokeProxy(f.ctx, "edge-1", store.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	clock.Set(next.Add(time.Minute))
	if _, err := feed.RenewIfDue(f.ctx, dir, clock.Now()); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("renewal of a revoked certificate: %v", err)
	}
	if fileSerial() != renewed {
		t.Fatal("a refused renewal changed the credentials")
	}
}
