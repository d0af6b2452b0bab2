package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/proxy"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/sqlstore"
	"github.com/devicegate/devicegate/store/storetest"
)

// BenchmarkCatchUpPostgres is the database side of issue 12's "a proxy
// down while 100,000 revocations happen: catch-up after it returns"
// (TestPartitionProxyFromDatabase measures the whole, network included):
// a proxy's policy holds CATCHUP_DEVICES active devices (100,000 by
// default) on PostgreSQL, all of them are revoked (one policy seq each),
// and one Sync applies them. Reported: the whole sync (sync-ms: read,
// apply, publish), the CPU time of this process meanwhile (sync-cpu-ms, GC
// included) and of the PostgreSQL server's processes (pg-cpu-ms), and the
// store's read of the changes alone (read-ms).
//
// CATCHUP_ONE_TX_EACH=1 revokes each device in a transaction of its own,
// as revocations are made (slower to set up; PostgreSQL's first read of
// rows written by 100,000 transactions costs more than after one).
//
//	go test -run '^$' -bench CatchUpPostgres -benchtime 1x -count 3 ./bench/
func BenchmarkCatchUpPostgres(b *testing.B) {
	n := 100_000
	if s := os.Getenv("CATCHUP_DEVICES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("CATCHUP_DEVICES=%q: want a positive number", s)
		}
	}
	ctx := context.Background()
	srv := pgtest.Start(b)
	st := openPostgres(b, srv)
	tn := storetest.Tenant(b, st, "shop")
	sub := storetest.Protect(b, st, storetest.Sub(b, st, store.NewSubAccount{TenantID: tn.ID, Name: "alice", Role: "customer-service"}), 5)
	catalog, _ := config.DefaultCatalog()
	var read, sync, cpu, pgCPU time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		insertActiveDevices(b, st, tn.ID, sub.ID, n, i)
		policy := proxy.NewPolicy(st, catalog, slog.New(slog.DiscardHandler))
		if err := policy.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		before := policy.Snapshot().Seq
		if os.Getenv("CATCHUP_ONE_TX_EACH") != "" {
			revokeEachDevice(b, st)
		} else {
			revokeEveryDevice(b, st)
		}
		b.StartTimer()
		began, cpuBefore, pgBefore := time.Now(), cpuTime(b), serverCPU(b, srv)
		if err := policy.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		sync += time.Since(began)
		cpu += cpuTime(b) - cpuBefore
		pgCPU += serverCPU(b, srv) - pgBefore
		b.StopTimer()
		if got := policy.Snapshot().Seq; got != before+int64(n) {
			b.Fatalf("snapshot at seq %d after the catch-up, want %d", got, before+int64(n))
		}
		began = time.Now()
		ch, err := st.PolicyChangesSince(ctx, before)
		if err != nil {
			b.Fatal(err)
		}
		read += time.Since(began)
		if len(ch.Devices) != n {
			b.Fatalf("%d devices changed, want %d", len(ch.Devices), n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(sync.Milliseconds())/float64(b.N), "sync-ms")
	b.ReportMetric(float64(read.Milliseconds())/float64(b.N), "read-ms")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "sync-cpu-ms")
	b.ReportMetric(float64(pgCPU.Milliseconds())/float64(b.N), "pg-cpu-ms")
}

// insertActiveDevices writes n active devices of sub straight into the
// table (through the CA, 100,000 take minutes), each with its own seq.
func insertActiveDevices(b testing.TB, st *sqlstore.DB, tenantID, subID string, n, round int) {
	b.Helper()
	now := time.Now()
	_, err := st.SQL().ExecContext(context.Background(), `WITH s AS (UPDATE policy_seq SET v = v + $1 WHERE id = 1 RETURNING v - $1 AS base)
		INSERT INTO devices (id, tenant_id, sub_id, label, serial, fingerprint, key_id, status, issued_at, expires_at,
			enrolled_ip, enrolled_ua, last_seen_at, last_seen_ip, revoked_at, reason, change_seq)
		SELECT 'c' || $2::int || '-' || g, $3, $4, 'bench device', to_hex($2::int * 10000000 + g + 4096), '00', '', 'active', $5, $6,
			'127.0.0.1', 'bench', 0, '', 0, 0, s.base + g
		FROM s, generate_series(1, $1) AS g`,
		n, round, tenantID, subID, now.UnixMicro(), now.Add(30*24*time.Hour).UnixMicro())
	if err != nil {
		b.Fatal(fmt.Errorf("insert %d devices: %w", n, err))
	}
}

// revokeEveryDevice revokes every active device, one policy seq each, as n
// revocations by the store would leave them.
func revokeEveryDevice(b testing.TB, st *sqlstore.DB) {
	b.Helper()
	_, err := st.SQL().ExecContext(context.Background(), `WITH a AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM devices WHERE status = 'active'),
		s AS (UPDATE policy_seq SET v = v + (SELECT count(*) FROM a) WHERE id = 1 RETURNING v - (SELECT count(*) FROM a) AS base)
		UPDATE devices d SET status = 'revoked', revoked_at = $1, reason = 5, change_seq = s.base + a.k FROM a, s WHERE d.id = a.id`,
		time.Now().UnixMicro())
	if err != nil {
		b.Fatal(fmt.Errorf("revoke every device: %w", err))
	}
}

// serverCPU is the CPU time srv's processes have used.
func serverCPU(b *testing.B, srv *pgtest.Server) time.Duration {
	d, err := srv.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// revokeEachDevice revokes every active device as revokeEveryDevice does,
// one transaction (one statement) per device.
func revokeEachDevice(b testing.TB, st *sqlstore.DB) {
	b.Helper()
	ctx := context.Background()
	rows, err := st.SQL().QueryContext(ctx, `SELECT id FROM devices WHERE status = 'active'`)
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if _, err := st.SQL().ExecContext(ctx, `WITH s AS (UPDATE policy_seq SET v = v + 1 WHERE id = 1 RETURNING v)
			UPDATE devices SET status = 'revoked', revoked_at = $1, reason = 5, change_seq = s.v FROM s WHERE devices.id = $2`,
			time.Now().UnixMicro(), id); err != nil {
			b.Fatal(err)
		}
	}
}
