package ca

import (
	"github.com/prometheus/client_golang/prometheus"
)

// issueMetrics count the outcomes of Issue, whichever entry called it (the
// HTTPS API, the portal's staff enrollment).
type issueMetrics struct {
	issued   prometheus.Counter
	refusals *prometheus.CounterVec // by Explain's stable code
}

// RegisterMetrics exports the authority's issuance outcomes on reg:
// devicegate_ca_issued_total and devicegate_ca_issue_refusals_total{code}
// (code as in the API's error answers, e.g. quota_exceeded), and the
// active devices per device intermediate,
// devicegate_ca_intermediate_active_devices{intermediate,state}. Call it
// once, before the authority serves.
func (a *Authority) RegisterMetrics(reg prometheus.Registerer) {
	m := &issueMetrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "devicegate_ca_issued_total",
			Help: "Device certificates issued (re-deliveries of an already issued certificate included)."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "devicegate_ca_issue_refusals_total",
			Help: "Enrollments refused, by the API error code (quota_exceeded: the sub-account's device quota is full)."}, []string{"code"}),
	}
	// Exported at 0 from the start, so the quota alert sees a series.
	m.refusals.WithLabelValues("quota_exceeded")
	reg.MustRegister(m.issued, m.refusals, &intermediateGauge{a: a})
	a.metrics = m
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
