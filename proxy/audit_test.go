package proxy

import (
	"context"
	"log/slog"
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
	sub, err := st.CreateSubAccount(ctx, store.NewSubAccount{TenantID: tn.ID, Name: "alice", Role: "operations", PasswordHash: "x"}, actor)
	if err != nil {
		t.Fatal(err)
	}
	dev := store.Device{ID: store.NewID()}
	st.EnablePhone(ctx, tn.ID, sub.ID, []byte("JBSWY3DPEHPK3PXP"), actor)
	st.SetProtection(ctx, tn.ID, sub.ID, store.Protection{Enabled: true, MaxDevices: 1}, actor)
	if _, _, err := st.IssueDevice(ctx, store.IssueRequest{TenantID: tn.ID, SubID: sub.ID, DeviceID: dev.ID, Serial: "abc", Fingerprint: "00",
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Now: time.Now()}, actor); err != nil {
		t.Fatal(err)
	}
	g := Grant{Principal: identity.Principal{TenantID: tn.ID, DeviceID: dev.ID}, SubName: "shop:alice"}
	for range 10 { // nobody drains yet: 4 fit, 6 are dropped at once
		a.Record("10.0.0.1", g, "orders.sold", "/orders/sold", ReasonCertificateValid)
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
			if d, err := st.GetDevice(ctx, tn.ID, dev.ID); err != nil || d.LastSeenIP != "10.0.0.1" || d.LastSeenAt.IsZero() {
				t.Fatalf("device last seen not recorded: %+v %v", d, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events %+v", evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
