package ca

import (
	"github.com/prometheus/client_golang/prometheus"
)

// issueMetrics count the outcomes of Issue, whichever entry called it (the
// HTTPS API, the portal's staff enrollment).
type issueMetrics struct {
	issued   prometheus.Counter
	refusals *prometheus.CounterVec // by Explain's stable code
	reloads  *prometheus.CounterVec // device intermediate reloads by result
}

// RegisterMetrics exports the authority's issuance outcomes on reg:
// devicegate_ca_issued_total and devicegate_ca_issue_refusals_total{code}
// (code as in the API's error answers, e.g. quota_exceeded), and the
// active devices per device intermediate,
// devicegate_ca_intermediate_active_devices{intermediate,state}, and the
// reloads of the device intermediates, devicegate_ca_intermediate_reloads_total{result}. Call it
// once, before the authority serves.
func (a *Authority) RegisterMetrics(reg prometheus.Registerer) {
	m := &issueMetrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "devicegate_ca_issued_total",
			Help: "Device certificates issued (re-deliveries of an already issued certificate included)."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "devicegate_ca_issue_refusals_total",
			Help: "Enrollments refused, by the API error code (quota_exceeded: the sub-account's device quota is full)."}, []string{"code"}),
	}
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "devicegate_ca_intermediate_reloads_total",
		Help: `Device intermediate sets read from the CA directory by a running node: result="reloaded" (a rotation now in use), "failed" (the directory did not load; the node kept its set).`}, []string{"result"})
	// Exported at 0 from the start, so the alerts see a series.
	m.refusals.WithLabelValues("quota_exceeded")
	m.reloads.WithLabelValues("reloaded")
	m.reloads.WithLabelValues("failed")
	reg.MustRegister(m.issued, m.refusals, m.reloads, &intermediateGauge{a: a})
	a.metrics = m
}

// countReload records one reload outcome (nothing before RegisterMetrics).
func (a *Authority) countReload(result string) {
	if a.metrics != nil {
		a.metrics.reloads.WithLabelValues(result).Inc()
	}
}

// countIssue records one Issue outcome (nothing before RegisterMetrics).
func (a *Authority) countIssue(err error) {
	m := a.metrics
	switch {
	case m == nil:
	case err == nil:
		m.issued.Inc()
	default:
		m.refusals.WithLabelValues(Explain(err).Code).Inc()
	}
}
