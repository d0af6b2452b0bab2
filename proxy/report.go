package proxy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// Reporter is where a proxy says which policy seq its snapshot has
// applied, so that `revoke --wait` and the owner console can tell where a
// revocation is in force: the store it reads (StoreReporter) or the CA's
// feed (FeedClient.ReportApplied), which records it for the proxy of the
// client certificate.
type Reporter interface {
	ReportApplied(ctx context.Context, seq int64) error
}

// StoreReporter reports to the store, as the proxy named Name.
type StoreReporter struct {
	Store interface {
		ReportProxy(ctx context.Context, r store.ProxyReport) error
	}
	Name string
}

// ReportApplied records seq with this node's time.
func (r StoreReporter) ReportApplied(ctx context.Context, seq int64) error {
	return r.Store.ReportProxy(ctx, store.ProxyReport{Name: r.Name, Seq: seq, SeenAt: time.Now(),
		Heartbeat: api.PolicyAckEvery, Via: store.ViaStore})
}

// ReportTo makes Run report the applied seq to r after every change of
// the snapshot and at least every api.PolicyAckEvery (the heartbeat that
// says the proxy is still there). Call it before Run.
func (p *Policy) ReportTo(r Reporter) { p.reporter = r }

// announceApplied wakes the report loop after the snapshot moved.
func (p *Policy) announceApplied() {
	select {
	case p.applied <- struct{}{}:
	default: // a report is already due
	}
}

// reportLoop reports until ctx ends. A failed report is logged and made
// again at the next change or heartbeat; meanwhile waiters see this proxy
// behind (and, after 3 heartbeats, gone), never ahead.
func (p *Policy) reportLoop(ctx context.Context) {
	t := time.NewTicker(api.PolicyAckEvery)
	defer t.Stop()
	for {
		if err := p.reporter.ReportApplied(ctx, p.Snapshot().Seq); err != nil && ctx.Err() == nil {
			p.log.Warn("policy seq report failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.applied:
		}
	}
}

// RegisterAppliedSeq exports devicegate_proxy_applied_seq{proxy=name}: the
// policy seq this proxy has applied, under the name it reports with.
func RegisterAppliedSeq(reg prometheus.Registerer, p *Policy, name string) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicegate_proxy_applied_seq",
		Help:        "Policy change sequence this proxy has applied (and reports to the store or the CA's feed).",
		ConstLabels: prometheus.Labels{"proxy": name}},
		func() float64 { return float64(p.Snapshot().Seq) }))
}
