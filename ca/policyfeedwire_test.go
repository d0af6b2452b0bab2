package ca

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// The policy feed carries what a proxy's decision needs and nothing else:
// a real answer holds only the fields of api.PolicyPage, and none of what
// the store knows beyond them (label, enrollment address and user agent,
// last use, fingerprint, key id, secrets) reaches an edge proxy.
func TestPolicyFeedCarriesOnlyDecisionFields(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	key := newKey(t)
	is, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, key, nil),
		Label: "front-desk-leak", ClientIP: "203.0.113.77", UA: "LeakCheckAgent/1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.TouchDevice(f.ctx, f.tenant.ID, is.Device.ID, f.now, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	dev, err := f.store.GetDevice(f.ctx, f.tenant.ID, is.Device.ID)
	if err != nil || dev.EnrolledIP != "203.0.113.77" || dev.EnrolledUA == "" || dev.LastSeenIP == "" {
		t.Fatalf("the device records what must not leak: %+v %v", dev, err)
	}

	resp, err := f.proxyClient(f.proxyCert("edge-1", only(f.tenant.ID))).Get(url + api.PolicyPath + "?since=0&wait=0s")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(api.VersionHeader) != api.Version {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get(api.VersionHeader), body)
	}

	for _, leak := range []string{dev.Label, dev.EnrolledIP, dev.EnrolledUA, dev.LastSeenIP, dev.Fingerprint, dev.KeyID} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the policy feed carries %q", leak)
		}
	}
	var page map[string]any
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	onlyKeys(t, "page", page, "seq", "subaccounts", "devices")
	subs, devices := page["subaccounts"].([]any), page["devices"].([]any)
	if len(subs) == 0 || len(devices) == 0 {
		t.Fatalf("page without entries: %s", body)
	}
	for _, s := range subs {
		onlyKeys(t, "sub-account", s.(map[string]any), "tenant_id", "id", "full_name", "status", "role", "role_edited", "role_points", "grants", "protection", "window", "not_verified")
		onlyKeys(t, "protection", s.(map[string]any)["protection"].(map[string]any), "enabled", "max_devices")
	}
	for _, d := range devices {
		got := onlyKeys(t, "device", d.(map[string]any), "id", "tenant_id", "sub_id", "serial", "status", "expires_at")
		if len(got) != 6 {
			t.Errorf("device fields %v, want all six", got)
		}
	}

	// And what it carries is what the store says.
	typed, err := api.DecodePolicyPage(bytes.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(typed.Devices, func(d api.PolicyDevice) bool { return d.ID == dev.ID })
	want := api.PolicyDevice{ID: dev.ID, TenantID: dev.TenantID, SubID: dev.SubID, Serial: dev.Serial, Status: "active", ExpiresAt: dev.ExpiresAt}
	if i < 0 || !typed.Devices[i].ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("device %+v not in %+v", want, typed.Devices)
	}
	typed.Devices[i].ExpiresAt = want.ExpiresAt
	if typed.Devices[i] != want {
		t.Errorf("device %+v, want %+v", typed.Devices[i], want)
	}
	j := slices.IndexFunc(typed.SubAccounts, func(a api.PolicySubAccount) bool { return a.ID == f.alice.ID })
	if j < 0 || typed.SubAccounts[j].FullName != f.alice.FullName() || typed.SubAccounts[j].Status != string(store.StatusActive) ||
		!typed.SubAccounts[j].Protection.Enabled || typed.SubAccounts[j].Protection.MaxDevices != f.alice.Protection.MaxDevices {
		t.Errorf("sub-account %+v, want %+v", typed.SubAccounts, f.alice)
	}
}

// onlyKeys fails for a key of m outside allowed and returns m's keys.
func onlyKeys(t *testing.T, what string, m map[string]any, allowed ...string) []string {
	t.Helper()
	var keys []string
	for k := range m {
		keys = append(keys, k)
		if !slices.Contains(allowed, k) {
			t.Errorf("%s carries %q (only %v belong on the wire)", what, k, allowed)
		}
	}
	return keys
}

// Every route that needs a proxy certificate requires a version this CA
// speaks: a request without one (a proxy older than versions, which would
// misread the feed) or of another major version is refused before
// anything is read or written; the same request stating the version passes.
func TestProxyRoutesRequireAPIVersion(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	clock := f.atomicClock()
	device := f.issue(f.alice)
	cred := f.proxyCert("edge-1", only(f.tenant.ID))
	clock.Advance(ProxyRenewFrom + time.Minute) // the proxy certificate may renew
	csr, _ := json.Marshal(api.ProxyRenewRequest{CSR: string(newCSR(t, newKey(t), nil))})
	audit, _ := json.Marshal(api.AuditUpload{Records: []api.AuditRecord{{TenantID: f.tenant.ID, Action: "proxy.allow", Target: "shop:alice"}}})
	seen, _ := json.Marshal(api.SeenUpload{Devices: []api.SeenDevice{{TenantID: f.tenant.ID, DeviceID: device.Device.ID, IP: "192.0.2.1"}}})
	routes := []struct {
		method, path string
		body         []byte
		ok           int
	}{
		{"GET", api.PolicyPath + "?since=0&wait=0s", nil, http.StatusOK},
		{"GET", api.RevocationsPath + "?since=0&wait=0s", nil, http.StatusOK},
		{"POST", api.AuditPath, audit, http.StatusNoContent},
		{"POST", api.SeenPath, seen, http.StatusNoContent},
		{"POST", api.ProxyRenewPath, csr, http.StatusCreated},
	}
	bare := f.proxyClient(cred).Transport.(versioned).RoundTripper // states no version
	for _, rt := range routes {
		for _, version := range []string{"", "2.0", "0.9", "1.0.0", api.Version} {
			before := f.counts(f.alice)
			req, _ := http.NewRequest(rt.method, url+rt.path, bytes.NewReader(rt.body))
			req.Header.Set("Content-Type", "application/json")
			if version != "" {
				req.Header.Set(api.VersionHeader, version)
			}
			resp, err := bare.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			var out api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if version == api.Version {
				if resp.StatusCode != rt.ok {
					t.Errorf("%s %s with version %s: %d %+v, want %d", rt.method, rt.path, version, resp.StatusCode, out.Error, rt.ok)
				}
				continue
			}
			if resp.StatusCode != http.StatusBadRequest || out.Error.Code != "unsupported_version" {
				t.Errorf("%s %s with version %q: %d %+v, want 400 unsupported_version", rt.method, rt.path, version, resp.StatusCode, out.Error)
			}
			if after := f.counts(f.alice); after != before {
				t.Errorf("%s %s with version %q changed the store: %v -> %v", rt.method, rt.path, version, before, after)
			}
		}
	}
}
