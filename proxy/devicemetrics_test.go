package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDeviceExpiryMetrics: the proxy exports how many active device
// certificates end within 7 and 30 days and when the first one ends;
// expired certificates are not counted.
func TestDeviceExpiryMetrics(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	p := &Policy{}
	p.cur.Store(&Snapshot{devices: map[string]deviceState{
		"expired": {expires: now.Add(-time.Hour)},
		"3 days":  {expires: now.Add(3 * day)},
		"20 days": {expires: now.Add(20 * day)},
		"a year":  {expires: now.Add(365 * day)},
	}})
	c := deviceExpiry{policy: p, now: func() time.Time { return now }}
	want := `
# HELP devicegate_proxy_device_cert_next_expiry_timestamp_seconds NotAfter of the active device certificate that ends first, as a Unix time (absent with no active device).
# TYPE devicegate_proxy_device_cert_next_expiry_timestamp_seconds gauge
devicegate_proxy_device_cert_next_expiry_timestamp_seconds 1.796472e+09
# HELP devicegate_proxy_device_certs_expiring Active device certificates in the proxy's policy that end within the window (renew them: devicegate renew, or the portal).
# TYPE devicegate_proxy_device_certs_expiring gauge
devicegate_proxy_device_certs_expiring{within="30d"} 2
devicegate_proxy_device_certs_expiring{within="7d"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	p.cur.Store(&Snapshot{devices: map[string]deviceState{"expired": {expires: now.Add(-time.Hour)}}})
	if n := testutil.CollectAndCount(c, "devicegate_proxy_device_cert_next_expiry_timestamp_seconds"); n != 0 {
		t.Fatalf("next expiry exported with no active device (%d series)", n)
	}
}
