package ratelimit_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/ratelimit"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
)

// Two nodes over one store count the same failures; a key locked on one
// is locked on the other; a store that cannot answer refuses.
func TestSharedAcrossNodes(t *testing.T) {
	ctx := context.Background()
	st := sqlitetest.Open(t)
	log := slog.New(slog.DiscardHandler)
	a := ratelimit.NewShared(st, "test:", 3, time.Minute, log)
	b := ratelimit.NewShared(st, "test:", 3, time.Minute, log)
	other := ratelimit.NewShared(st, "other:", 3, time.Minute, log)
	t0 := time.Now()
	a.Fail(ctx, "k", t0)
	b.Fail(ctx, "k", t0.Add(time.Second))
	if ok, _ := a.Allowed(ctx, "k", t0.Add(2*time.Second)); !ok {
		t.Fatal("locked before the limit")
	}
	a.Fail(ctx, "k", t0.Add(3*time.Second))
	if ok, wait := b.Allowed(ctx, "k", t0.Add(4*time.Second)); ok || wait <= 0 || wait > time.Minute {
		t.Fatalf("node B after the third failure across nodes: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := other.Allowed(ctx, "k", t0.Add(4*time.Second)); !ok {
		t.Fatal("another limiter's key of the same name is locked")
	}
	if ok, _ := a.Allowed(ctx, "k", t0.Add(3*time.Second+time.Minute)); !ok {
		t.Fatal("still locked after the window")
	}
	b.Fail(ctx, "j", t0)
	b.Fail(ctx, "j", t0)
	a.Succeed(ctx, "j")
	b.Fail(ctx, "j", t0)
	if ok, _ := b.Allowed(ctx, "j", t0); !ok {
		t.Fatal("a success on node A did not clear the count")
	}

	st.Close()
	if ok, _ := a.Allowed(ctx, "fresh", t0); ok {
		t.Fatal("a store that cannot answer let a try through")
	}
}
