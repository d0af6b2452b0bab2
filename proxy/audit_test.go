package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/storetest"
)

func TestCoalesceKeepsEveryDecisionCounted(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	alice := auditKey{tenant: "t1", sub: "shop:alice", ip: "10.0.0.1", reason: ReasonAllowed, device: "d1", point: "orders.sold", path: "/orders/sold"}
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
	st := sqlitetest.Open(t)
	tn := storetest.Tenant(t, st, "shop")
	a := NewAuditor(st, 4, slog.New(slog.DiscardHandler))
	sub := storetest.Protected(t, st, tn, "alice", 1)
	dev := store.Device{ID: store.NewID()}
	if _, _, err := st.IssueDevice(ctx, store.IssueRequest{TenantID: tn.ID, SubID: sub.ID, DeviceID: dev.ID, Serial: "abc", Fingerprint: "00",
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Now: time.Now()}, actor); err != nil {
		t.Fatal(err)
	}
	g := Grant{Principal: identity.Principal{TenantID: tn.ID, DeviceID: dev.ID}, SubName: "shop:alice"}
	for range 10 { // nobody drains yet: 4 fit, 6 are dropped at once
		a.Record("10.0.0.1", g, "orders.sold", "/orders/sold", ReasonAllowed)
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
		if len(evs) == 2 { // the 4 decisions and the gap of the 6 dropped, in either order
			dec, gap := evs[0], evs[1]
			if dec.Action == store.AuditGapAction {
				dec, gap = gap, dec
			}
			if dec.Detail["count"] != "4" || dec.Actor.IP != "10.0.0.1" || dec.Detail["path"] != "/orders/sold" {
				t.Fatalf("audit event %+v", dec)
			}
			if g, err := store.ParseAuditGap(gap); err != nil || g.Events != 6 {
				t.Fatalf("gap entry %+v: %v", gap, err)
			}
			// "Last seen" is written after the batch: it may lag a poll.
			d, err := st.GetDevice(ctx, tn.ID, dev.ID)
			if err == nil && d.LastSeenIP == "10.0.0.1" && !d.LastSeenAt.IsZero() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("device last seen not recorded: %+v %v", d, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit events %+v", evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// flakySink is an audit store that can fail, block, or refuse one store's
// entries; otherwise it forwards to next (or keeps the records).
type flakySink struct {
	next    AuditSink
	mu      sync.Mutex
	down    bool
	block   chan struct{} // non-nil: writes wait until it is closed
	refuse  string        // this store's entries are always refused
	records []store.AuditRecord
	blocked atomic.Int64 // writes that waited on block
	failed  atomic.Int64
}

func (s *flakySink) set(down bool, block chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.block = down, block
}

func (s *flakySink) AppendAuditBatch(ctx context.Context, recs []store.AuditRecord) error {
	s.mu.Lock()
	down, block := s.down, s.block
	s.mu.Unlock()
	if block != nil {
		s.blocked.Add(1)
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, r := range recs {
		if down || r.TenantID == s.refuse {
			s.failed.Add(1)
			return errors.New("audit store unavailable")
		}
	}
	if s.next != nil {
		return s.next.AppendAuditBatch(ctx, recs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, recs...)
	return nil
}

func (s *flakySink) TouchDevice(ctx context.Context, tenantID, deviceID string, at time.Time, ip string) error {
	if s.next != nil {
		return s.next.TouchDevice(ctx, tenantID, deviceID, at, ip)
	}
	return nil
}

// tally is what the sink holds: decisions (with their coalesced counts)
// and gap entries, by store.
func (s *flakySink) tally() (decisions map[string]int, gaps map[string][]store.AuditGap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	decisions, gaps = map[string]int{}, map[string][]store.AuditGap{}
	for _, r := range s.records {
		if r.Entry.Action == store.AuditGapAction {
			g, err := store.ParseAuditGap(store.AuditEvent{AuditEntry: r.Entry})
			if err != nil {
				panic(err)
			}
			gaps[r.TenantID] = append(gaps[r.TenantID], g)
			continue
		}
		n, err := strconv.Atoi(r.Entry.Detail["count"])
		if err != nil {
			n = 1
		}
		decisions[r.TenantID] += n
	}
	return decisions, gaps
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Every decision is either written or counted as dropped, and each store
// that lost events gets one gap entry with the exact number, once writes
// succeed again; a store that refuses its gap entry holds back no other.
func TestAuditStorageFailingRecordsGapPerStore(t *testing.T) {
	grant := func(tenant string) Grant {
		return Grant{Principal: identity.Principal{TenantID: tenant, DeviceID: "d-" + tenant}, SubName: tenant + ":alice"}
	}
	type burst struct {
		tenant string
		n      int
	}
	tests := []struct {
		name        string
		buffer      int
		runFirst    bool // the writer runs while the bursts are recorded
		down        bool // the store fails during the bursts
		refuse      string
		bursts      []burst
		wantDropped int64
		wantGaps    map[string]int64
	}{
		{"no failure, no gap", 100, true, false, "", []burst{{"t1", 5}, {"t2", 3}}, 0, map[string]int64{}},
		{"store fails for a while", 100, true, true, "", []burst{{"t1", 5}, {"t2", 3}}, 8, map[string]int64{"t1": 5, "t2": 3}},
		{"buffer full", 4, false, false, "", []burst{{"t1", 10}}, 6, map[string]int64{"t1": 6}},
		{"buffer full across stores", 4, false, false, "", []burst{{"t1", 3}, {"t2", 4}, {"t1", 2}}, 5, map[string]int64{"t2": 3, "t1": 2}},
		{"one store refuses its entries", 2, false, false, "gone", []burst{{"t1", 3}, {"gone", 3}}, 4, map[string]int64{"t1": 1}},
	}
	for _, tc := range tests {
		// In a bubble: the linger and the gap retries (at the product's
		// gapEvery) run on the bubble's clock, in no real time.
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				sink := &flakySink{refuse: tc.refuse}
				sink.set(tc.down, nil)
				a := NewAuditor(sink, tc.buffer, slog.New(slog.DiscardHandler))
				done := make(chan struct{})
				start := func() {
					go func() { a.Run(ctx); close(done) }()
				}
				if tc.runFirst {
					start()
				}
				before := time.Now()
				total := 0
				for _, b := range tc.bursts {
					for range b.n {
						a.Record("10.0.0.1", grant(b.tenant), "orders.sold", "/orders/sold", ReasonAllowed)
						total++
					}
				}
				if tc.down {
					waitFor(t, "a failed write", func() bool { return sink.failed.Load() > 0 && len(a.events) == 0 && a.Dropped() == int64(total) })
					sink.set(false, nil)
				}
				if !tc.runFirst {
					start()
					waitFor(t, "the buffer drained", func() bool { return len(a.events) == 0 })
				}
				a.Record("10.0.0.1", grant("t1"), "orders.sold", "/orders/sold", ReasonAllowed) // after recovery
				total++
				written := func() int {
					d, _ := sink.tally()
					n := 0
					for _, c := range d {
						n += c
					}
					return n
				}
				waitFor(t, "every decision written or dropped", func() bool {
					_, gaps := sink.tally()
					return written()+int(a.Dropped()) == total && len(gaps) == len(tc.wantGaps)
				})
				if a.Dropped() != tc.wantDropped {
					t.Fatalf("dropped %d, want %d", a.Dropped(), tc.wantDropped)
				}
				_, gaps := sink.tally()
				for tenant, want := range tc.wantGaps {
					g := gaps[tenant]
					if len(g) != 1 || g[0].Events != want {
						t.Fatalf("store %s: gaps %+v, want one of %d events", tenant, g, want)
					}
					if g[0].From.Before(before.Add(-time.Millisecond)) || g[0].To.Before(g[0].From) || g[0].To.After(time.Now()) {
						t.Fatalf("store %s: gap span %v..%v", tenant, g[0].From, g[0].To)
					}
				}
				if tc.refuse != "" && !a.gapsPending() {
					t.Fatal("the refused store's gap was forgotten")
				}
				cancel()
				<-done
			})
		})
	}
}

// Requests never wait for the audit store: with its writes blocked or
// failing, every one of n high-risk requests is answered; afterwards each
// decision is in the log or counted as dropped, and the log's gap entry
// (seen by VerifyAudit's caller) has exactly the dropped number.
func TestAuditStorageFailingRequestsAnswered(t *testing.T) {
	const n = 200
	tests := []struct {
		name   string
		block  bool // else: writes fail
		buffer int
	}{
		{"store blocked", true, 8},
		{"store failing", false, 8},
		{"store healthy", false, 4096}, // the product's buffer
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			sink := &flakySink{}
			a := NewAuditor(sink, tc.buffer, slog.New(slog.DiscardHandler))
			a.gapEvery = 20 * time.Millisecond
			e := newEnvWith(t, time.Minute, nil, func(o *Options) { o.Audit = a })
			sink.next = e.st
			done := make(chan struct{})
			go func() { a.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			cert := e.device("alice", testpki.LeafOptions{})
			c := e.client(&cert)
			e.login(c, "alice")

			release := make(chan struct{})
			healthy := tc.name == "store healthy"
			switch {
			case tc.block:
				sink.set(false, release)
			case !healthy:
				sink.set(true, nil)
			}
			total, answered := 0, 0
			ask := func() {
				if status, reason, _ := get(t, c, e.url+"/orders/sold"); status == 200 {
					answered++
				} else {
					t.Errorf("GET /orders/sold: %d %q", status, reason)
				}
				total++
			}
			if !healthy {
				// The writer is stuck in (or failing) a write before the n requests.
				ask()
				waitFor(t, "the writer at the store", func() bool { return sink.blocked.Load()+sink.failed.Load() > 0 })
			}
			for range n {
				ask()
			}
			if !healthy && sink.blocked.Load()+sink.failed.Load() == 0 {
				t.Fatal("the store was never reached")
			}
			if answered != total {
				t.Fatalf("%d of %d requests answered while the audit store was down", answered, total)
			}
			sink.set(false, nil)
			close(release)
			waitFor(t, "the buffer drained", func() bool { return len(a.events) == 0 })
			ask() // after recovery: written

			// Written decisions (coalesced counts) plus drops account for every request.
			var written int
			var gaps []store.AuditGap
			waitFor(t, "every decision written or dropped", func() bool {
				evs, err := e.st.ListAudit(e.ctx, e.tenant.ID, store.AuditFilter{Action: "proxy."})
				if err != nil {
					t.Fatal(err)
				}
				written = 0
				for _, ev := range evs {
					if ev.Action == store.AuditGapAction {
						continue
					}
					c, err := strconv.Atoi(ev.Detail["count"])
					if err != nil {
						c = 1
					}
					written += c
				}
				gaps, err = store.AuditGaps(e.ctx, e.st, e.tenant.ID)
				if err != nil {
					t.Fatal(err)
				}
				var lost int64
				for _, g := range gaps {
					lost += g.Events
				}
				return written+int(a.Dropped()) == total && lost == a.Dropped()
			})
			if err := e.st.VerifyAudit(e.ctx, e.tenant.ID); err != nil {
				t.Fatal(err)
			}
			if healthy {
				if a.Dropped() != 0 || len(gaps) != 0 {
					t.Fatalf("healthy store: dropped %d, gaps %+v", a.Dropped(), gaps)
				}
				return
			}
			if a.Dropped() == 0 || len(gaps) != 1 || gaps[0].Events != a.Dropped() {
				t.Fatalf("dropped %d, gaps %+v: want one gap of every dropped event", a.Dropped(), gaps)
			}
			want := fmt.Sprintf("1 gap: %d events lost between ", a.Dropped())
			if got := store.DescribeAuditGaps(gaps); !strings.HasPrefix(got, want) {
				t.Fatalf("described as %q, want %q...", got, want)
			}
			t.Logf("%d requests answered, %d written, %d dropped: %s", total, written, a.Dropped(), store.DescribeAuditGaps(gaps))
		})
	}
}
