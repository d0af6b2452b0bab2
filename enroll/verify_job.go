package enroll

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/devicegate/devicegate/store"
)

// VerifyDeadlines is the job that freezes sub-accounts whose real-person
// verification is overdue. Every node may run it; a store lease lets one
// at a time work, and a freeze reaches proxies as a policy change.
type VerifyDeadlines struct {
	Store  store.Store
	Holder string        // this node's name in the lease
	Every  time.Duration // between checks (0: one minute)
	Log    *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// verifyLease names the job's lease in the store.
const verifyLease = "verify-deadlines"

// Run checks until ctx ends; store errors are logged and retried.
func (j VerifyDeadlines) Run(ctx context.Context) error {
	if j.Store == nil || j.Holder == "" || j.Log == nil {
		return errors.New("verify deadlines: store, holder and log are required")
	}
	every := j.Every
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := j.RunOnce(ctx, 3*every); err != nil && ctx.Err() == nil {
			j.Log.Warn("verify deadlines", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce takes the lease for ttl and, when this node holds it, freezes
// what is overdue; it returns how many sub-accounts it froze (-1: the lease
// is another node's).
func (j VerifyDeadlines) RunOnce(ctx context.Context, ttl time.Duration) (int, error) {
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	held, err := j.Store.AcquireLease(ctx, verifyLease, j.Holder, now(), ttl)
	if err != nil || !held {
		return -1, err
	}
	n, err := verifyRules{st: j.Store, now: now}.freezeOverdue(ctx)
	if n > 0 {
		j.Log.Info("verify deadlines: frozen", "count", n)
	}
	return n, err
}
