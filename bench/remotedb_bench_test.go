package bench

import (
	"context"
	"crypto/rand"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// remoteOneWay is how long the relay of BenchmarkIssueVsBarePostgresRemote
// holds each segment: a round trip of ~2 ms, as between two availability
// zones. (Go's timers wake no finer than a millisecond on an idle P, so a
// LAN's 0.2 ms cannot be imitated this way.)
const remoteOneWay = time.Millisecond

// BenchmarkIssueVsBarePostgresRemote is IssueVsBarePostgres with the
// database a network away: every byte between the CA and PostgreSQL goes
// through a relay on loopback that holds it remoteOneWay in each
// direction. A batch's round trips run one after the other on one
// connection, so with the database on another host they, not the CPU,
// bound issuance: this counts the round trips a batch makes.
//
//	go test -run '^$' -bench IssueVsBarePostgresRemote -benchtime 300x -count 3 ./bench/
func BenchmarkIssueVsBarePostgresRemote(b *testing.B) {
	srv := pgtest.StartDurable(b)
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	st, err := postgres.Open(context.Background(), delayedDSN(b, srv.NewDatabase(b), remoteOneWay), store.Options{SealKey: seal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := newIssueEnvOn(b, st, ratioRounds*b.N)
	e.dbCPU = srv.CPUTime
	issueVsBare(b, e)
}

// delayedDSN is dsn (a postgres:// URL) through a relay on loopback that
// forwards each direction's bytes oneWay after it read them.
func delayedDSN(b *testing.B, dsn string, oneWay time.Duration) string {
	b.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	target := u.Host
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				go delayedCopy(up, c, oneWay)
				delayedCopy(c, up, oneWay)
			}()
		}
	}()
	u.Host = ln.Addr().String()
	return u.String()
}

// delayedCopy copies src to dst, writing what each read returned oneWay
// after the read, in order; then closes both.
func delayedCopy(dst, src net.Conn, oneWay time.Duration) {
	type segment struct {
		b  []byte
		at time.Time
	}
	q := make(chan segment, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- segment{buf[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for s := range q {
		time.Sleep(time.Until(s.at))
		if _, err := dst.Write(s.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}
