package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// A role stops in order: listeners first, then components, and only then
// does run return (the caller closes the store after it). A component or
// listener that fails ends the role with its error; nothing is left
// running when run returns.
func TestRoleStopsInOrder(t *testing.T) {
	errBroken := errors.New("broken")
	tests := []struct {
		name            string
		cancel          bool // the role's context ends (SIGTERM)
		componentFails  bool
		serverFails     bool
		wantErr         error
		wantErrContains string
		wantStops       int // listeners and components that stopped on their context
	}{
		{name: "shutdown", cancel: true, wantStops: 4},
		{name: "component fails", componentFails: true, wantErr: errBroken, wantErrContains: "audit: broken", wantStops: 3},
		{name: "listener fails", serverFails: true, wantErr: errBroken, wantStops: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var events []string
			note := func(e string) {
				mu.Lock()
				defer mu.Unlock()
				events = append(events, e)
			}
			var r role
			serving := make(chan struct{}, 2)
			for _, name := range []string{"proxy", "admin"} {
				r.serve(func(ctx context.Context) error {
					serving <- struct{}{}
					if tc.serverFails && name == "admin" {
						return errBroken
					}
					<-ctx.Done()
					time.Sleep(20 * time.Millisecond) // answering the requests in flight
					note("listener " + name + " stopped")
					return nil
				})
			}
			for _, name := range []string{"policy sync", "audit"} {
				r.own(name, func(ctx context.Context) error {
					if tc.componentFails && name == "audit" {
						<-serving
						<-serving
						return errBroken
					}
					<-ctx.Done()
					note("component " + name + " stopped")
					return nil
				})
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.run(ctx) }()
			if tc.cancel {
				<-serving
				<-serving
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the role did not stop")
			}
			note("run returned")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("run: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErrContains != "" && err.Error() != tc.wantErrContains {
				t.Fatalf("run: %q, want %q", err, tc.wantErrContains)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(events) != tc.wantStops+1 || events[len(events)-1] != "run returned" {
				t.Fatalf("run returned before everything stopped: %v", events)
			}
			componentStopped := false
			for _, e := range events {
				switch {
				case strings.HasPrefix(e, "component"):
					componentStopped = true
				case strings.HasPrefix(e, "listener") && componentStopped:
					t.Fatalf("a component stopped before every listener had: %v", events)
				}
			}
		})
	}
}
