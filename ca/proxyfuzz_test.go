package ca

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Whatever a proxy uploads to POST /v1/audit, an accepted entry carries
// the proxy's identity and the CA's time; the proxy's time survives only
// as observed_at.
func FuzzProxyAuditUpload(f *testing.F) {
	f.Add(`{"records":[{"TenantID":"t","Entry":{"Time":"2001-02-03T04:05:06Z","Actor":{"Kind":"owner","Name":"owner","IP":"10.0.0.9","UA":"x"},"Action":"proxy.allow","Target":"shop:alice","Detail":{"observed_at":"forged","client_ip":"1.2.3.4"}}}]}`)
	f.Add(`{"records":[{"TenantID":"t","Entry":{"Action":"proxy.deny"}}]}`)
	f.Add(`{"records":[]}`)
	f.Add(`{"records":null}`)
	f.Add(`{"records":[{"Entry":{"Detail":null}}]} trailing`)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/audit", strings.NewReader(body))
		var up AuditUpload
		if err := decodeJSON(httptest.NewRecorder(), r, &up, maxAuditUploadBytes); err != nil {
			return
		}
		for _, rec := range up.Records {
			e := proxyEntry(rec.Entry, "edge-1", "192.0.2.1", now)
			if e.Actor.Kind != "proxy" || e.Actor.Name != "proxy:edge-1" || e.Actor.IP != "192.0.2.1" || e.Actor.UA != "" || !e.Time.Equal(now) {
				t.Fatalf("uploaded entry keeps a client-chosen actor or time: %+v", e)
			}
			obs, ok := e.Detail["observed_at"]
			if rec.Entry.Time.IsZero() == ok || (ok && obs != rec.Entry.Time.UTC().Format(time.RFC3339Nano)) {
				t.Fatalf("observed_at %q for reported time %v", obs, rec.Entry.Time)
			}
			if ip, ok := e.Detail["client_ip"]; (rec.Entry.Actor.IP == "") == ok || (ok && ip != rec.Entry.Actor.IP) {
				t.Fatalf("client_ip %q for reported %q", ip, rec.Entry.Actor.IP)
			}
		}
	})
}
