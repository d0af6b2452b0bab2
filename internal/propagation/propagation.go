// Package propagation tells where a policy change (a revocation) is in
// force: which live proxies have reported a policy seq at or after it
// (store.ProxyReport). `devicegate admin device revoke --wait`, `sub depart
// --wait` and the owner console read it from here.
package propagation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Reports is the part of the store read here.
type Reports interface {
	ListProxyReports(ctx context.Context) ([]store.ProxyReport, error)
}

// Progress is where seq is in force among the proxies counted.
type Progress struct {
	Seq     int64
	Applied []string // proxies that have applied seq, by name
	Pending []string // proxies that have not (yet), by name
	// LastApplied is the latest time (each proxy's report of when its seq
	// last advanced) among Applied: when seq reached the last of them.
	LastApplied time.Time
}

// Total is the number of proxies counted.
func (p Progress) Total() int { return len(p.Applied) + len(p.Pending) }

// Done reports whether every proxy counted has applied seq.
func (p Progress) Done() bool { return len(p.Pending) == 0 }

// String is "applied on 3/3 proxies", naming the ones behind if any:
// "applied on 2/3 proxies; not yet on proxy-3".
func (p Progress) String() string {
	s := fmt.Sprintf("applied on %d/%d proxies", len(p.Applied), p.Total())
	if !p.Done() {
		s += "; not yet on " + strings.Join(p.Pending, ", ")
	}
	return s
}

// Check is where seq is in force among the proxies live at now.
func Check(ctx context.Context, st Reports, seq int64, now time.Time) (Progress, error) {
	reports, err := st.ListProxyReports(ctx)
	if err != nil {
		return Progress{}, err
	}
	return Of(reports, seq, now), nil
}

// Of is Check on reports already read (one read for a page of revocations).
func Of(reports []store.ProxyReport, seq int64, now time.Time) Progress {
	return progress(reports, seq, func(r store.ProxyReport) bool { return r.LiveAt(now) })
}

func progress(reports []store.ProxyReport, seq int64, counted func(store.ProxyReport) bool) Progress {
	p := Progress{Seq: seq, Applied: []string{}, Pending: []string{}}
	for _, r := range reports {
		switch {
		case !counted(r):
		case r.Seq >= seq:
			p.Applied = append(p.Applied, r.Name)
			if r.AppliedAt.After(p.LastApplied) {
				p.LastApplied = r.AppliedAt
			}
		default:
			p.Pending = append(p.Pending, r.Name)
		}
	}
	return p
}

// ErrTimeout is Wait's error when a proxy has not applied the change in time.
var ErrTimeout = errors.New("not applied on every live proxy in time")

// Wait waits until every proxy live when it starts has applied seq: a
// proxy that stops reporting meanwhile is waited for (and named), one that
// had already departed is not. It checks again when wake fires (the
// store's report notification, nil: none) and at least every poll() (asked
// again after each check: a waiter whose notifications are not in place
// yet polls faster). When ctx ends first it returns the progress so far
// and ErrTimeout.
func Wait(ctx context.Context, st Reports, seq int64, wake <-chan struct{}, poll func() time.Duration) (Progress, error) {
	reports, err := st.ListProxyReports(ctx)
	if err != nil {
		return Progress{}, err
	}
	now := time.Now()
	var live []string
	for _, r := range reports {
		if r.LiveAt(now) {
			live = append(live, r.Name)
		}
	}
	counted := func(r store.ProxyReport) bool { return slices.Contains(live, r.Name) }
	t := time.NewTimer(poll())
	defer t.Stop()
	for {
		p := progress(reports, seq, counted)
		if p.Done() {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("%w: %s", ErrTimeout, p)
		case <-wake:
		case <-t.C:
		}
		t.Reset(poll())
		next, err := st.ListProxyReports(ctx)
		if err != nil && ctx.Err() != nil {
			return p, fmt.Errorf("%w: %s", ErrTimeout, p)
		}
		if err != nil {
			return p, err
		}
		reports = next
	}
}
