package bench

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/sqlstore"
)

// BenchmarkIssueVsBarePostgres is IssueVsBare with the CA on PostgreSQL
// (issue 12: >= 1,000 certificates/s from 8 clients): bare signing and
// POST /v1/enroll over HTTPS in alternating rounds in one process. The
// server is crash-safe as in production (fsync, synchronous_commit = on):
// a certificate is answered only after its device's commit is on disk.
// The HTTPS side's CPU time includes the server's processes.
//
//	go test -run '^$' -bench IssueVsBarePostgres -benchtime 1000x -count 3 ./bench/
func BenchmarkIssueVsBarePostgres(b *testing.B) {
	srv := pgtest.StartDurable(b)
	e := newIssueEnvOn(b, openPostgres(b, srv), ratioRounds*b.N)
	e.dbCPU = srv.CPUTime
	issueVsBare(b, e)
}

// openPostgres opens the store on a fresh database of srv.
func openPostgres(b *testing.B, srv *pgtest.Server) *sqlstore.DB {
	b.Helper()
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	st, err := postgres.Open(context.Background(), srv.NewDatabase(b), store.Options{SealKey: seal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
