package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// deviceExpiryWindows are the windows devicegate_proxy_device_certs_expiring
// counts: a week (alert) and the 30 days in which a device may renew.
var deviceExpiryWindows = []struct {
	label string
	d     time.Duration
}{{"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

var (
	deviceExpiringDesc = prometheus.NewDesc("devicegate_proxy_device_certs_expiring",
		"Active device certificates in the proxy's policy that end within the window (renew them: devicegate renew, or the portal).",
		[]string{"within"}, nil)
	deviceNextExpiryDesc = prometheus.NewDesc("devicegate_proxy_device_cert_next_expiry_timestamp_seconds",
		"NotAfter of the active device certificate that ends first, as a Unix time (absent with no active device).", nil, nil)
)

// deviceExpiry reads the expiry of the current snapshot's active devices
// at every scrape.
type deviceExpiry struct {
	policy *Policy
	now    func() time.Time
}

func (d deviceExpiry) Describe(ch chan<- *prometheus.Desc) {
	ch <- deviceExpiringDesc
	ch <- deviceNextExpiryDesc
}

func (d deviceExpiry) Collect(ch chan<- prometheus.Metric) {
	now := d.now()
	counts := make([]int, len(deviceExpiryWindows))
	var next time.Time
	for _, dev := range d.policy.Snapshot().devices {
		if !now.Before(dev.expires) {
			continue // expired: no longer active
		}
		if next.IsZero() || dev.expires.Before(next) {
			next = dev.expires
		}
		for i, w := range deviceExpiryWindows {
			if dev.expires.Before(now.Add(w.d)) {
				counts[i]++
			}
		}
	}
	for i, w := range deviceExpiryWindows {
		ch <- prometheus.MustNewConstMetric(deviceExpiringDesc, prometheus.GaugeValue, float64(counts[i]), w.label)
	}
	if !next.IsZero() {
		ch <- prometheus.MustNewConstMetric(deviceNextExpiryDesc, prometheus.GaugeValue, float64(next.Unix()))
	}
}
