package ca

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
)

// Whatever a proxy uploads to POST /v1/audit, an accepted record carries
// the proxy's identity and the CA's time; the proxy's time and client
// address survive only as observed_at and client_ip.
func FuzzProxyAuditUpload(f *testing.F) {
	f.Add(`{"records":[{"tenant_id":"t","time":"2001-02-03T04:05:06Z","client_ip":"10.0.0.9","action":"proxy.allow","target":"shop:alice","outcome":"ok","detail":{"observed_at":"forged","client_ip":"1.2.3.4"}}]}`)
	f.Add(`{"records":[{"tenant_id":"t","action":"proxy.deny"}]}`)
	f.Add(`{"records":[{"tenant_id":"t","action":"proxy.deny","actor":{"kind":"owner"}}]}`)
	f.Add(`{"records":[]}`)
	f.Add(`{"records":null}`)
	f.Add(`{"records":[{"detail":null}]} trailing`)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", api.AuditPath, strings.NewReader(body))
		var up api.AuditUpload
		if err := decodeJSON(httptest.NewRecorder(), r, &up, api.MaxUploadBytes); err != nil {
			return
		}
		for _, rec := range up.Records {
			got := proxyRecord(rec, "edge-1", "192.0.2.1", now)
			e := got.Entry
			if e.Actor.Kind != "proxy" || e.Actor.Name != "proxy:edge-1" || e.Actor.IP != "192.0.2.1" || e.Actor.UA != "" || !e.Time.Equal(now) {
				t.Fatalf("uploaded record keeps a client-chosen actor or time: %+v", e)
			}
			if got.TenantID != rec.TenantID || e.Action != rec.Action || e.Target != rec.Target || e.Outcome != rec.Outcome {
				t.Fatalf("record %+v stored as %+v", rec, got)
			}
			obs, ok := e.Detail["observed_at"]
			if rec.Time.IsZero() == ok || (ok && obs != rec.Time.UTC().Format(time.RFC3339Nano)) {
				t.Fatalf("observed_at %q for reported time %v", obs, rec.Time)
			}
			if ip, ok := e.Detail["client_ip"]; (rec.ClientIP == "") == ok || (ok && ip != rec.ClientIP) {
				t.Fatalf("client_ip %q for reported %q", ip, rec.ClientIP)
			}
		}
	})
}
