package ca

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The issuance counters follow Issue's outcomes: issued devices, and
// refusals by the API code (a full quota as quota_exceeded, exported at 0
// before any refusal).
func TestIssueMetrics(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	f.ca.RegisterMetrics(reg)
	want := func(step string, issued, quota, badCSR float64) {
		t.Helper()
		got := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "/" + l.GetValue()
				}
				got[key] = m.GetCounter().GetValue()
			}
		}
		if got["devicegate_ca_issued_total"] != issued || got["devicegate_ca_issue_refusals_total/quota_exceeded"] != quota ||
			got["devicegate_ca_issue_refusals_total/bad_csr"] != badCSR {
			t.Errorf("%s: %v, want issued %v, quota_exceeded %v, bad_csr %v", step, got, issued, quota, badCSR)
		}
		if _, ok := got["devicegate_ca_issue_refusals_total/quota_exceeded"]; !ok {
			t.Errorf("%s: quota_exceeded not exported: %v", step, got)
		}
	}
	want("start", 0, 0, 0)
	f.issue(f.alice)
	f.issue(f.alice) // the quota (2) is full now
	want("two issued", 2, 0, 0)
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, newKey(t), nil)}); err == nil {
		t.Fatal("a third device passed a quota of 2")
	}
	want("quota full", 2, 1, 0)
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: []byte("not a CSR")}); err == nil {
		t.Fatal("a malformed CSR was issued")
	}
	want("bad CSR", 2, 1, 1)
}
