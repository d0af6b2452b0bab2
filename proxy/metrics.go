package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics, registered on an injected
// registry (served on the admin listener).
type Metrics struct {
	// counters and observers cache label lookups: hashing the label values
	// under the vectors' lock on every request showed in profiles. Keys
	// are bounded by the configuration (upstreams, points, reasons).
	counters  sync.Map // requestLabels -> prometheus.Counter
	observers sync.Map // upstream name -> prometheus.Observer

	reg        prometheus.Registerer
	requests   *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	upstream   *prometheus.HistogramVec
	openConns  prometheus.Gauge
}

// NewMetrics registers the gateway's metrics on reg; the policy's seq,
// staleness and the audit drops are read when scraped.
func NewMetrics(reg prometheus.Registerer, p *Policy, a *Auditor) *Metrics {
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devicegate_proxy_requests_total",
			Help: "Requests by upstream, permission point, decision and reason (permission and reason empty for normal paths).",
		}, []string{"upstream", "permission", "decision", "reason"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devicegate_proxy_handshake_failures_total",
			Help: "Client certificates refused during the TLS handshake, by reason.",
		}, []string{"reason"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "devicegate_proxy_upstream_seconds",
			Help:    "Time from forwarding a request to the end of the upstream's response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"upstream"}),
		openConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "devicegate_proxy_open_connections",
			Help: "Client connections currently open.",
		}),
	}
	// Every reason is exported from the start (at 0), so rates and alerts
	// see a series before the first failure.
	for _, r := range handshakeReasons {
		m.handshakes.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.handshakes, m.upstream, m.openConns, deviceExpiry{policy: p, now: time.Now},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicegate_proxy_policy_seq", Help: "Policy change sequence of the current snapshot."},
			func() float64 { return float64(p.Snapshot().Seq) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicegate_proxy_policy_staleness_seconds", Help: "Seconds since the last successful policy sync."},
			func() float64 { return p.Staleness(time.Now()).Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicegate_proxy_policy_snapshot_refused_total", Help: "Persisted policy snapshots refused at start (damaged: checksum, truncation, version)."},
			func() float64 { return float64(p.SnapshotsRefused()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicegate_proxy_audit_dropped_total", Help: "Audit events lost (buffer full or audit write failed); each store's loss is recorded as a proxy.audit_gap entry."},
			func() float64 { return float64(a.Dropped()) }),
	)
	return m
}

// watchServer exports how a Server's HTTP/1.1 connections were served: by
// the fast path, or handed to net/http.
func (m *Metrics) watchServer(s *Server) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicegate_proxy_fast_path_requests_total",
			Help: "HTTP/1.1 requests answered by the fast path (the others are served by net/http)."},
			func() float64 { return float64(s.fastServed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicegate_proxy_handoffs_total",
			Help: "HTTP/1.1 connections the fast path handed to net/http (a request it does not serve itself)."},
			func() float64 { return float64(s.handedOff.Load()) }),
	)
}

type requestLabels struct{ upstream, permission, decision, reason string }

func (m *Metrics) request(upstream, permission, decision, reason string) {
	if m == nil {
		return
	}
	k := requestLabels{upstream, permission, decision, reason}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.requests.WithLabelValues(upstream, permission, decision, reason))
	}
	c.(prometheus.Counter).Inc()
}

func (m *Metrics) handshakeFailure(reason string) {
	if m != nil {
		m.handshakes.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) upstreamTime(upstream string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.observers.Load(upstream)
	if !ok {
		o, _ = m.observers.LoadOrStore(upstream, m.upstream.WithLabelValues(upstream))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

// ConnState counts open connections; set it as http.Server.ConnState.
func (m *Metrics) ConnState(_ net.Conn, s http.ConnState) {
	if m == nil {
		return
	}
	switch s {
	case http.StateNew:
		m.openConns.Inc()
	case http.StateClosed, http.StateHijacked:
		m.openConns.Dec()
	}
}
