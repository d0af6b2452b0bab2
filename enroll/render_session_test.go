package enroll_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/store"
)

// sessionReads is the real store, counting its session reads.
type sessionReads struct {
	store.Store
	n atomic.Int64
}

func (s *sessionReads) GetSession(ctx context.Context, hash []byte, now time.Time) (store.Session, error) {
	s.n.Add(1)
	return s.Store.GetSession(ctx, hash, now)
}

// A request reads its session from the store once: require loads it and
// the page (render) shows it without reading it again.
func TestSessionReadOncePerRequest(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.ownerLogin("")
	counted := &sessionReads{Store: e.st}
	catalog, _ := config.DefaultCatalog()
	p, err := enroll.New(enroll.Options{Store: counted, Issuer: testIssuer{e.authority}, Catalog: catalog,
		ProxyURL: "https://localhost:9443/", CookieKey: make([]byte, 32), Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(p)
	t.Cleanup(srv.Close)
	b.at(srv, "")
	tests := []struct {
		name   string
		do     func() int
		status int
	}{
		{"owner console", func() int { st, _, _ := b.get("/owner/"); return st }, http.StatusOK},
		{"records", func() int { st, _, _ := b.get("/owner/audit"); return st }, http.StatusOK},
		{"refused post (no CSRF token)", func() int {
			st, _, _ := b.post("/owner/subs", url.Values{"csrf": {""}, "name": {"x"}})
			return st
		}, http.StatusForbidden},
		{"public page", func() int { st, _, _ := b.get("/owner/login"); return st }, http.StatusOK},
		{"staff page as the owner", func() int { st, _, _ := b.get("/staff/"); return st }, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			counted.n.Store(0)
			if st := tc.do(); st != tc.status {
				t.Fatalf("status %d, want %d", st, tc.status)
			}
			if n := counted.n.Load(); n != 1 {
				t.Fatalf("the session was read %d times", n)
			}
		})
	}
}
