package main

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/internal/propagation"
	"github.com/devicegate/devicegate/store/postgres"
)

// waitOptions are --wait and --timeout of the commands that revoke.
type waitOptions struct {
	wait    *bool
	timeout *time.Duration
}

func waitFlags(fs *flag.FlagSet) waitOptions {
	return waitOptions{
		wait:    fs.Bool("wait", false, "wait until every live proxy has applied the change, and say how long it took"),
		timeout: fs.Duration("timeout", 10*time.Second, "with --wait: how long to wait at most, `D`; then name the proxies behind and fail"),
	}
}

// Without PostgreSQL's notification (SQLite, or before LISTEN is in
// place: connecting can take longer than the proxies need), waiting polls
// the proxies' reports; with it, the poll is only a safety net.
const (
	waitPollFast      = 20 * time.Millisecond
	waitPollListening = 500 * time.Millisecond
)

// waiter waits for a policy seq to reach every live proxy. Start it before
// making the change: on PostgreSQL its LISTEN is then in place when the
// first proxy reports.
type waiter struct {
	a         *app
	began     time.Time
	wake      chan struct{}
	listening atomic.Bool // LISTEN is in place
	stop      func()
}

func (a *app) startWaiter(ctx context.Context, o waitOptions) *waiter {
	if o.wait == nil || !*o.wait { // nil: a command without --wait (sub freeze, restore)
		return nil
	}
	w := &waiter{a: a, began: time.Now(), wake: make(chan struct{}, 1), stop: func() {}}
	if a.cfg.Database.Driver == "postgres" {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = postgres.ListenReports(lctx, a.cfg.Database.DSN, func() {
				w.listening.Store(true) // the first call comes once LISTEN is in place
				select {
				case w.wake <- struct{}{}:
				default:
				}
			}, a.log)
		}()
		w.stop = func() { cancel(); <-done }
	}
	return w
}

// finish waits (when w is not nil) until every proxy live now has applied
// seq, and prints "<done>; applied on 3/3 proxies in 48 ms"; on timeout it
// prints which proxies are behind and fails.
func (w *waiter) finish(ctx context.Context, done string, seq int64, timeout time.Duration, env *cliEnv) error {
	if w == nil {
		return nil
	}
	defer w.stop()
	poll := func() time.Duration {
		if w.listening.Load() {
			return waitPollListening
		}
		return waitPollFast
	}
	// The timeout counts from the committed change: slow proxies, not a
	// slow database, are what it is about.
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := propagation.Wait(wctx, w.a.store, seq, w.wake, poll)
	took := time.Since(w.began)
	if err != nil {
		fmt.Fprintf(env.stdout, "%s; %s after %s\n", done, p, took.Round(time.Millisecond))
		return fmt.Errorf("seq %d: %w", seq, err)
	}
	// The time to the last proxy's report of applying it (the proxies'
	// clocks; bounded by what this command saw), not to this check.
	reached := min(max(p.LastApplied.Sub(w.began), 0), took)
	fmt.Fprintf(env.stdout, "%s; %s in %d ms\n", done, p, reached.Milliseconds())
	return nil
}

// stopEarly ends the waiter of a change that failed.
func (w *waiter) stopEarly() {
	if w != nil {
		w.stop()
	}
}
