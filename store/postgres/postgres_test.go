package postgres

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/sqlstore"
	"github.com/devicegate/devicegate/store/storetest"
)

func opener(srv *pgtest.Server) func(t *testing.T) *sqlstore.DB {
	return func(t *testing.T) *sqlstore.DB {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		st, err := Open(context.Background(), srv.NewDatabase(t), store.Options{SealKey: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	open := opener(srv)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
	})
	t.Run("Internals", func(t *testing.T) {
		storetest.RunInternals(t, open(t), `DROP TRIGGER audit_no_update ON audit`)
	})
	t.Run("PolicyNotifications", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		key := make([]byte, 32)
		st, err := Open(context.Background(), dsn, store.Options{SealKey: key})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan struct{}, 16)
		stopped := make(chan error, 1)
		go func() { stopped <- ListenPolicy(ctx, dsn, func() { got <- struct{}{} }, slog.New(slog.DiscardHandler)) }()
		defer func() {
			cancel()
			if err := <-stopped; err != nil {
				t.Errorf("ListenPolicy after its context ended: %v, want nil", err)
			}
		}()
		select { // the first call comes once LISTEN is in place
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("listener did not start")
		}
		tn := storetest.Tenant(t, st, "shop")
		storetest.Sub(t, st, store.NewSubAccount{TenantID: tn.ID, Name: "a", Role: "other"})
		select {
		case <-got:
		case <-time.After(time.Second):
			t.Fatal("no notification within 1 s of a policy change")
		}
		// A new device is a policy change too: its seq is notified.
		sub := storetest.Protected(t, st, tn, "b", 1)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "LISTEN "+PolicyChannel); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		d, _, err := st.IssueDevice(ctx, store.IssueRequest{TenantID: tn.ID, SubID: sub.ID, DeviceID: store.NewID(), Serial: "1a",
			Fingerprint: "ab", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Now: now}, storetest.Actor)
		if err != nil {
			t.Fatal(err)
		}
		waitCtx, stop := context.WithTimeout(ctx, 10*time.Second)
		defer stop()
		n, err := conn.WaitForNotification(waitCtx)
		if err != nil || n.Payload != strconv.FormatInt(d.ChangeSeq, 10) {
			t.Fatalf("notification after an issuance: %+v %v, want the device's seq %d", n, err, d.ChangeSeq)
		}
	})
	t.Run("ReportNotifications", func(t *testing.T) {
		// What `revoke --wait` wakes on: a proxy's report of its applied seq.
		dsn := srv.NewDatabase(t)
		st, err := Open(context.Background(), dsn, store.Options{SealKey: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan struct{}, 16)
		stopped := make(chan error, 1)
		go func() {
			stopped <- ListenReports(ctx, dsn, func() { got <- struct{}{} }, slog.New(slog.DiscardHandler))
		}()
		defer func() {
			cancel()
			if err := <-stopped; err != nil {
				t.Errorf("ListenReports after its context ended: %v, want nil", err)
			}
		}()
		select { // the first call comes once LISTEN is in place
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("listener did not start")
		}
		tn := storetest.Tenant(t, st, "shop")
		storetest.Sub(t, st, store.NewSubAccount{TenantID: tn.ID, Name: "a", Role: "other"})
		select { // a policy change is not a report
		case <-got:
			t.Fatal("a policy change notified the report channel")
		default:
		}
		if err := st.ReportProxy(ctx, store.ProxyReport{Name: "p1", Seq: 1, SeenAt: time.Now(), Heartbeat: time.Second, Via: store.ViaStore}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(time.Second):
			t.Fatal("no notification within 1 s of a proxy report")
		}
	})
	t.Run("ConcurrentMigrations", func(t *testing.T) {
		// Several nodes starting at once on an empty database.
		dsn := srv.NewDatabase(t)
		key := make([]byte, 32)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				st, err := Open(context.Background(), dsn, store.Options{SealKey: key})
				if err == nil {
					st.Close()
				}
				errs[i] = err
			}(i)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}
