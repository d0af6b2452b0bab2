package proxy

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite"
)

func TestCoalesceKeepsEveryDecisionCounted(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	alice := auditKey{tenant: "t1", sub: "shop:alice", ip: "10.0.0.1", reason: ReasonCertificateValid, device: "d1", point: "orders.sold", path: "/orders/sold"}
	otherPath, otherIP, denied := alice, alice, alice
	otherPath.path = "/orders/sold/42"
	otherIP.ip = "10.0.0.2"
	denied.reason = ReasonSessionMismatch
	tests := []struct {
		name   string
		batch  []auditKey
		counts []string // Detail["count"] per record, "" = single
		action []string
	}{
		{"single", []auditKey{alice}, []string{""}, []string{"proxy.allow"}},
		{"repeats merge", []auditKey{alice, alice, alice}, []string{"3"}, []string{"proxy.allow"}},
		{"path, ip and outcome keep records apart", []auditKey{alice, otherPath, alice, otherIP, denied, denied},
			[]string{"2", "", "", "2"}, []string{"proxy.allow", "proxy.allow", "proxy.allow", "proxy.deny"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var batch []auditEvent
			for i, k := range tc.batch {
				batch = append(batch, auditEvent{key: k, at: t0.Add(time.Duration(i) * time.Millisecond)})
			}
			recs := coalesce(batch)
			if len(recs) != len(tc.counts) {
				t.Fatalf("%d records, want %d", len(recs), len(tc.counts))
			}
			for i, r := range recs {
				if got := r.Entry.Detail["count"]; got != tc.counts[i] {
					t.Errorf("record %d: count %q, want %q", i, got, tc.counts[i])
				}
				if r.Entry.Action != tc.action[i] {
					t.Errorf("record %d: action %q, want %q", i, r.Entry.Action, tc.action[i])
				}
				if tc.counts[i] != "" && r.Entry.Detail["last"] == "" {
					t.Errorf("record %d: merged without its last time", i)
				}
			}
		})
	}
}

// The auditor writes to a real store, and a full buffer drops (and counts)
// instead of blocking the request.
func TestAuditorWritesAndNeverBlocks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), store.Options{SealKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.CreateTenant(ctx, store.NewTenant{Name: "shop"}, actor)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuditor(st, 4, slog.New(slog.DiscardHandler))
	r := httptest.NewRequest("GET", "https://localhost/orders/sold", nil)
	r.RemoteAddr = "10.0.0.1:5555"
	g := Grant{Principal: identity.Principal{TenantID: tn.ID, DeviceID: "d1"}, SubName: "shop:alice"}
	for range 10 { // nobody drains yet: 4 fit, 6 are dropped at once
		a.Record(r, g, "orders.sold", "/orders/sold", ReasonCertificateValid)
	}
	if a.Dropped() != 6 {
		t.Fatalf("dropped %d, want 6", a.Dropped())
	}
	go a.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, err := st.ListAudit(ctx, tn.ID, store.AuditFilter{Action: "proxy."})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			if evs[0].Detail["count"] != "4" || evs[0].Actor.IP != "10.0.0.1" || evs[0].Detail["path"] != "/orders/sold" {
				t.Fatalf("audit event %+v", evs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events %+v", evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
