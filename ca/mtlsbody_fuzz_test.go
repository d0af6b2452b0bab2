package ca

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store/storetest"
)

// postAs sends body to path as the holder of chain (what the TLS layer
// has verified by then).
func postAs(srv http.Handler, path, body string, chain []*x509.Certificate) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.TLS = &tls.ConnectionState{PeerCertificates: chain, VerifiedChains: [][]*x509.Certificate{chain}}
	api.SetHeader(r.Header)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	return w
}

// FuzzRenewBody: whatever body a device sends to POST /v1/renew, the CA
// answers below 500, and a refused renewal leaves the device as it was.
func FuzzRenewBody(f *testing.F) {
	fx := newFixture(f)
	is := fx.issue(fx.alice)
	fx.now = is.Device.ExpiresAt.Add(-24 * time.Hour) // inside the renewal window
	good, _ := json.Marshal(map[string]string{"csr": string(newCSR(f, newKey(f), nil))})
	for _, s := range []string{string(good), `{"csr":""}`, `{"csr":1}`, `{"code":"x","csr":"y"}`, `[]`, ``, `{} {}`} {
		f.Add(s)
	}
	srv := NewServer(fx.ca)
	f.Fuzz(func(t *testing.T, body string) {
		fx.t = t
		before, err := fx.store.ListDevices(fx.ctx, fx.tenant.ID, fx.alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		w := postAs(srv, "/v1/renew", body, is.Chain)
		if w.Code >= 500 {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
		if w.Code == http.StatusCreated {
			return
		}
		after, err := fx.store.ListDevices(fx.ctx, fx.tenant.ID, fx.alice.ID)
		if err != nil || len(after) != len(before) || (len(after) > 0 && after[0].Serial != before[0].Serial) {
			t.Fatalf("%q: refused (%d) but the device changed (%v)", body, w.Code, err)
		}
	})
}

// FuzzSeenUpload: whatever a proxy reports to POST /v1/seen, the CA
// answers below 500; a report naming a store outside the proxy's scope is
// refused whole and changes nothing.
func FuzzSeenUpload(f *testing.F) {
	fx := newFixture(f)
	is := fx.issue(fx.alice)
	other := storetest.Tenant(f, fx.store, "other")
	p := fx.proxyCert("edge-1", only(fx.tenant.ID))
	dev := is.Device.ID
	for _, s := range []string{
		`{"devices":[{"tenant_id":"` + fx.tenant.ID + `","device_id":"` + dev + `","ip":"192.0.2.7"}]}`,
		`{"devices":[{"tenant_id":"` + other.ID + `","device_id":"` + dev + `","ip":"192.0.2.8"}]}`,
		`{"devices":[{"tenant_id":"` + fx.tenant.ID + `","device_id":"nope","ip":"<script>"}]}`,
		`{"devices":[]}`, `{"devices":null}`, `{"devices":[{"at":"x"}]}`, ``,
	} {
		f.Add(s)
	}
	srv := NewServer(fx.ca)
	f.Fuzz(func(t *testing.T, body string) {
		fx.t = t
		before, err := fx.store.GetDevice(fx.ctx, fx.tenant.ID, dev)
		if err != nil {
			t.Fatal(err)
		}
		w := postAs(srv, "/v1/seen", body, p.chain)
		if w.Code >= 500 {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
		if w.Code == http.StatusNoContent {
			return
		}
		after, err := fx.store.GetDevice(fx.ctx, fx.tenant.ID, dev)
		if err != nil || after.LastSeenIP != before.LastSeenIP || !after.LastSeenAt.Equal(before.LastSeenAt) {
			t.Fatalf("%q: refused (%d) but the device's last seen changed", body, w.Code)
		}
	})
}
