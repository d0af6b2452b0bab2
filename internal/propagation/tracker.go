package propagation

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/store"
)

// TrackerStore is what the Tracker reads.
type TrackerStore interface {
	Reports
	CurrentSeq(ctx context.Context) (int64, error)
	RevocationsSince(ctx context.Context, afterSeq int64, limit int) ([]store.Revocation, error)
}

// trackedFor is how long a revocation is followed: one not in force on
// every live proxy by then is dropped (policy staleness alerts cover a
// proxy that is that far behind).
const trackedFor = 10 * time.Minute

// Tracker observes devicegate_revocation_propagation_seconds: for every
// revocation made while it runs, the time from its commit to the check
// that found every live proxy at its seq or later. Checks come on Wake
// (the store's report notification) and every poll, so the figure is
// late by at most the time to the next check.
type Tracker struct {
	st      TrackerStore
	hist    prometheus.Histogram
	wake    chan struct{}
	after   int64              // revocations up to this seq are read
	pending []store.Revocation // read, not yet in force everywhere, by seq
}

// NewTracker registers the histogram on reg.
func NewTracker(st TrackerStore, reg prometheus.Registerer) *Tracker {
	t := &Tracker{st: st, wake: make(chan struct{}, 1), hist: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "devicegate_revocation_propagation_seconds",
		Help:    "Time from a revocation's commit until every live proxy reported a policy seq at or after it.",
		Buckets: []float64{.01, .025, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60},
	})}
	reg.MustRegister(t.hist)
	return t
}

// Wake asks for a check now.
func (t *Tracker) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run checks until ctx ends, then returns nil; a failed check is tried
// again at the next one.
func (t *Tracker) Run(ctx context.Context, poll time.Duration) error {
	seq, err := t.st.CurrentSeq(ctx)
	for err != nil { // older revocations are history: start after the current seq
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
		seq, err = t.st.CurrentSeq(ctx)
	}
	t.after = seq
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-t.wake:
		}
		_ = t.check(ctx, time.Now())
	}
}

// check reads the new revocations and the reports, and observes the
// revocations now in force on every live proxy.
func (t *Tracker) check(ctx context.Context, now time.Time) error {
	for {
		revs, err := t.st.RevocationsSince(ctx, t.after, 1000)
		if err != nil {
			return err
		}
		if len(revs) == 0 {
			break
		}
		t.pending = append(t.pending, revs...)
		t.after = revs[len(revs)-1].Seq
	}
	if len(t.pending) == 0 {
		return nil
	}
	reports, err := t.st.ListProxyReports(ctx)
	if err != nil {
		return err
	}
	done := 0
	for _, r := range t.pending {
		p := Of(reports, r.Seq, now)
		if !p.Done() && now.Sub(r.RevokedAt) < trackedFor {
			break // a later seq is not in force everywhere either
		}
		if p.Done() && p.Total() > 0 {
			t.hist.Observe(max(now.Sub(r.RevokedAt), 0).Seconds())
		}
		done++
	}
	t.pending = t.pending[done:]
	return nil
}
