package main

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// role is what one command (serve, proxy, demo) runs: listeners that answer
// requests, and the components behind them (policy sync, audit writer, CRL
// refresh, feed watch, notifications). Every goroutine of the role has this
// owner, which starts them together and stops them in order:
//
//  1. the listeners shut down, answering the requests in flight (whose
//     audit events are then queued);
//  2. the components are cancelled and waited for (the auditor writes its
//     queue);
//  3. run returns, and only then does the caller close the store.
//
// A listener or a component that fails ends the role with its error; a
// component returns an error only for what retrying cannot mend (a failed
// policy sync, for instance, is retried, not fatal).
type role struct {
	servers    []func(context.Context) error
	components []component
}

// component is a background loop: it runs until its context ends, then
// returns nil (or earlier, with the error that stops it for good).
type component struct {
	name string
	run  func(context.Context) error
}

// serve adds listeners.
func (r *role) serve(servers ...func(context.Context) error) {
	r.servers = append(r.servers, servers...)
}

// own adds a component.
func (r *role) own(name string, run func(context.Context) error) {
	r.components = append(r.components, component{name, run})
}

// run starts everything and returns when ctx ends (nil) or something failed
// (its error), once every listener and component has stopped.
func (r *role) run(ctx context.Context) error {
	// The components outlive the listeners' shutdown: their context ends
	// only once every listener has stopped.
	compCtx, stopComponents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComponents()
	srvCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	var comps errgroup.Group
	for _, c := range r.components {
		comps.Go(func() error {
			if err := c.run(compCtx); err != nil {
				err = fmt.Errorf("%s: %w", c.name, err)
				fail(err) // shut the listeners down: the role cannot go on
				return err
			}
			return nil
		})
	}
	servers, srvCtx := errgroup.WithContext(srvCtx)
	for _, serve := range r.servers {
		servers.Go(func() error { return serve(srvCtx) })
	}
	srvErr := servers.Wait()
	stopComponents()
	return errors.Join(srvErr, comps.Wait())
}
