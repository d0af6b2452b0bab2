package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestFailoverStoreReconnects runs the store and its policy listener on a
// multi-host DSN (primary, synchronous standby, target_session_attrs=
// read-write) while a writer creates sub-accounts (each a policy change),
// crashes the primary and promotes the standby, and checks without
// reopening anything:
//   - writes succeed again on the promoted standby, soon after promotion;
//   - every write the store acknowledged before, during and after the
//     failover is there;
//   - the listener is back on the new primary: a change made there is
//     notified.
func TestFailoverStoreReconnects(t *testing.T) {
	pg := pgtest.StartReplicated(t)
	dsn := pg.NewDatabase(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx := context.Background()
	st, err := Open(ctx, dsn, store.Options{SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn := storetest.Tenant(t, st, "shop")

	lctx, stopListen := context.WithCancel(ctx)
	notified := make(chan struct{}, 1)
	listened := make(chan error, 1)
	go func() {
		listened <- ListenPolicy(lctx, dsn, func() {
			select {
			case notified <- struct{}{}:
			default:
			}
		}, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		stopListen()
		if err := <-listened; err != nil {
			t.Errorf("ListenPolicy: %v", err)
		}
	}()

	// The writer: one sub-account after the other; acked holds the ones
	// whose creation returned without error, each with when.
	var mu sync.Mutex
	acked := map[string]time.Time{}
	failed := 0
	wctx, stopWriter := context.WithCancel(ctx)
	written := make(chan struct{})
	ackedAfter := func(at time.Time) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		first, ok := time.Time{}, false
		for _, when := range acked {
			if when.After(at) && (!ok || when.Before(first)) {
				first, ok = when, true
			}
		}
		return first, ok
	}
	twenty := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; wctx.Err() == nil; i++ {
			name := fmt.Sprintf("s%d", i)
			_, err := st.CreateSubAccount(wctx, store.NewSubAccount{TenantID: tn.ID, Name: name, Role: "other", PasswordHash: "x"}, storetest.Actor)
			mu.Lock()
			if err == nil {
				acked[name] = time.Now()
				if len(acked) == 20 {
					close(twenty)
				}
			} else {
				failed++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(10 * time.Millisecond) // the database is away: do not spin
			}
		}
	}()

	<-twenty
	crashed := time.Now() // the primary stops serving at once; pg_ctl returns once it is gone
	pg.Primary.Crash(t)
	pg.Promote(t)
	promoted := time.Now()
	var firstWrite time.Time
	for deadline := time.Now().Add(30 * time.Second); ; {
		if at, ok := ackedAfter(promoted); ok {
			firstWrite = at
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write succeeded within 30 s of the promotion")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopWriter()
	<-written

	// The listener is back, on the new primary (the only server left),
	// and changes made there are notified: two in a row, so that the one
	// call the listener makes when its session starts cannot pass for one.
	listening := time.Now()
	waitListenSession(t, dsn)
	listenBack := time.Since(listening)
	var notifiedIn time.Duration
	for i := range 2 {
		select {
		case <-notified: // a call from before this change
		default:
		}
		changed := time.Now()
		storetest.Sub(t, st, store.NewSubAccount{TenantID: tn.ID, Name: fmt.Sprintf("n%d", i), Role: "other"})
		select {
		case <-notified:
			notifiedIn = max(notifiedIn, time.Since(changed))
		case <-time.After(10 * time.Second):
			t.Fatal("a change on the new primary was not notified within 10 s")
		}
	}

	subs, err := st.ListSubAccounts(ctx, tn.ID, store.SubAccountFilter{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range subs {
		have[s.Name] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for name, when := range acked {
		if !have[name] {
			t.Errorf("sub-account %s, acknowledged %v after the crash, is lost", name, when.Sub(crashed))
		}
	}
	t.Logf("promotion took %v after the crash; first write acknowledged %v after the promotion; %d writes acknowledged, %d failed meanwhile, none lost; LISTEN session on the new primary found %v after the first write; notifications within %v",
		promoted.Sub(crashed).Round(time.Millisecond), firstWrite.Sub(promoted).Round(time.Millisecond), len(acked), failed, listenBack.Round(time.Millisecond), notifiedIn.Round(time.Millisecond))
}

// waitListenSession waits until a session of dsn's database (on the server
// dsn connects to) listens on the policy channel.
func waitListenSession(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query = $1`, "LISTEN "+PolicyChannel).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no LISTEN session on the new primary after 30 s (%d, %v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
