package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

// quotaRounds is the issue's 1,000 rounds of 10 concurrent enrollments on
// a sub-account with N=5.
const (
	quotaRounds     = 1000
	quotaContenders = 10
	quotaN          = 5
)

func BenchmarkQuotaRaceSQLite(b *testing.B) {
	quotaRace(b, sqlitetest.Open(b))
}

func BenchmarkQuotaRacePostgres(b *testing.B) {
	dsn := pgtest.Start(b).NewDatabase(b)
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	st, err := postgres.Open(context.Background(), dsn, store.Options{SealKey: seal})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	quotaRace(b, st)
}

// quotaRace runs the rounds through ca.Issue (real CSR checks and signing)
// and fails unless every round admits exactly N.
func quotaRace(b *testing.B, st store.Store) {
	ctx := context.Background()
	a, _ := newCA(b, st)
	t := storetest.Tenant(b, st, "race")
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for round := 0; round < quotaRounds; round++ {
			b.StopTimer()
			s := storetest.Protected(b, st, t, fmt.Sprintf("r%d-%d", n, round), quotaN)
			// Each contender has its own key pair: one key holds one device.
			codes, csrs := make([]string, quotaContenders), make([][]byte, quotaContenders)
			for i := range codes {
				var err error
				if codes[i], _, err = a.CreateTicket(ctx, t.ID, s.ID, actor); err != nil {
					b.Fatal(err)
				}
				csrs[i] = newCSR(b)
			}
			b.StartTimer()
			var wg sync.WaitGroup
			var mu sync.Mutex
			won, full := 0, 0
			for i := 0; i < quotaContenders; i++ {
				wg.Add(1)
				go func(code string, csr []byte) {
					defer wg.Done()
					_, err := a.Issue(ctx, ca.IssueRequest{Code: code, CSR: csr})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						won++
					case errors.Is(err, store.ErrQuotaExceeded):
						full++
					default:
						b.Error(err)
					}
				}(codes[i], csrs[i])
			}
			wg.Wait()
			if won != quotaN || full != quotaContenders-quotaN {
				b.Fatalf("round %d: %d issued, %d refused; want exactly %d issued", round, won, full, quotaN)
			}
		}
	}
	b.ReportMetric(float64(quotaRounds), "rounds/op")
}
