package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Lockouts: the max-th failure within the window locks the name for the
// window; older failures are forgotten; a clear resets; names are
// independent; concurrent failures are all counted.
func testLockouts(t *testing.T, e *env) {
	const max, window = 3, 15 * time.Minute
	now := time.Now().UTC().Truncate(time.Microsecond)
	fail := func(name string, at time.Time) time.Time {
		t.Helper()
		until, err := e.st.CountFailure(e.ctx, name, at, max, window)
		if err != nil {
			t.Fatal(err)
		}
		return until
	}
	locked := func(name string, at time.Time) time.Time {
		t.Helper()
		until, err := e.st.LockedUntil(e.ctx, name, at)
		if err != nil {
			t.Fatal(err)
		}
		return until
	}

	// Two failures: not locked; the third locks for the window.
	for i := 0; i < max-1; i++ {
		if u := fail("acct:a", now.Add(time.Duration(i)*time.Minute)); !u.IsZero() {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	if !locked("acct:a", now).IsZero() {
		t.Fatal("locked before the max-th failure")
	}
	third := now.Add(5 * time.Minute)
	if u := fail("acct:a", third); !u.Equal(third.Add(window)) {
		t.Fatalf("third failure: locked until %v, want %v", u, third.Add(window))
	}
	if u := locked("acct:a", third.Add(time.Minute)); !u.Equal(third.Add(window)) {
		t.Fatalf("LockedUntil %v", u)
	}
	if !locked("acct:b", third).IsZero() {
		t.Fatal("another name is locked")
	}
	if !locked("acct:a", third.Add(window)).IsZero() {
		t.Fatal("still locked after the window")
	}

	// Failures spread wider than the window never add up to a lock.
	for i := 0; i < 10; i++ {
		if u := fail("acct:slow", now.Add(time.Duration(i)*(window/2+time.Minute))); !u.IsZero() {
			t.Fatalf("slow failure %d locked the name", i)
		}
	}

	// A good login clears the count.
	fail("acct:c", now)
	fail("acct:c", now)
	if err := e.st.ClearFailures(e.ctx, "acct:c"); err != nil {
		t.Fatal(err)
	}
	if u := fail("acct:c", now); !u.IsZero() {
		t.Fatal("a cleared count still counted")
	}

	// Concurrent failures are all counted: 20 at max 20 lock exactly.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.st.CountFailure(e.ctx, "ip:203.0.113.9", now, 20, window); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if locked("ip:203.0.113.9", now).IsZero() {
		t.Fatal("20 concurrent failures at max 20 did not lock")
	}

	// Bad input changes nothing.
	for _, tc := range []struct {
		name   string
		max    int
		window time.Duration
	}{{"", 3, window}, {"x", 0, window}, {"x", 3, 0}, {"x", 3, 48 * time.Hour}} {
		if _, err := e.st.CountFailure(e.ctx, tc.name, now, tc.max, tc.window); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CountFailure(%q, %d, %v): %v", tc.name, tc.max, tc.window, err)
		}
	}
}
