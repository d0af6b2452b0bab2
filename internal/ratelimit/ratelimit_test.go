package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	l := New(3, time.Minute)
	for i := range 2 {
		l.Fail("k", t0.Add(time.Duration(i)*time.Second))
	}
	if ok, _ := l.Allowed("k", t0.Add(3*time.Second)); !ok {
		t.Fatal("locked before the limit")
	}
	l.Fail("k", t0.Add(4*time.Second))
	if ok, wait := l.Allowed("k", t0.Add(5*time.Second)); ok || wait <= 0 {
		t.Fatal("not locked at the limit")
	}
	if ok, _ := l.Allowed("other", t0.Add(5*time.Second)); !ok {
		t.Fatal("one key's lockout affects another")
	}
	if ok, _ := l.Allowed("k", t0.Add(5*time.Second+time.Minute)); !ok {
		t.Fatal("still locked after the window")
	}
	l.Succeed("k")
	if ok, _ := l.Allowed("k", t0); !ok {
		t.Fatal("succeed did not clear the key")
	}
	// A full table refuses new keys rather than forgetting counters.
	small := New(3, time.Minute)
	small.capacity = 2
	small.Fail("a", t0)
	small.Fail("b", t0)
	if ok, _ := small.Allowed("c", t0); ok {
		t.Fatal("a full table admitted a new key")
	}
}
