package proxy

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Auditor writes high-risk decisions to the store's audit log from a
// bounded buffer, so the request path never waits for the database. An
// event lost to a full buffer or a failed write is counted (Dropped) and
// remembered per store; once writes succeed again, each such store's log
// gets one gap entry saying how many events were lost and when
// (store.AuditGapAction), so the loss shows in `audit verify`.
type Auditor struct {
	st      AuditSink
	log     *slog.Logger
	events  chan auditEvent
	full    chan struct{} // the buffer is half full: write now
	dropped atomic.Int64
	// gaps are the losses not yet recorded, by store.
	gapMu sync.Mutex
	gaps  map[string]store.AuditGap
	// nextGapTry is when gaps may be written next (Run goroutine only).
	nextGapTry time.Time
	gapEvery   time.Duration
	drainFor   time.Duration // auditDrainTimeout
	// touched is when each device's "last seen" was last written (only
	// the Run goroutine uses it).
	touched map[string]time.Time
	// stopMu orders Record against the end of Run: Record queues under the
	// read lock, Run sets stopped under the write lock before its last
	// drain, so an event is either queued in time to be written by that
	// drain or counted as dropped, never left in the buffer unaccounted.
	stopMu  sync.RWMutex
	stopped bool
}

// lastSeenEvery bounds how often a device's "last seen" (shown to the
// owner) is written: once a minute is plenty and costs nothing.
const lastSeenEvery = time.Minute

// auditEvent is one decision as queued: plain strings, no map, so that
// recording costs the request path one small copy.
type auditEvent struct {
	key auditKey
	at  time.Time
}

// auditKey is what makes two decisions the same for coalescing.
type auditKey struct {
	tenant, sub, ip, device, point, path string
	reason                               Reason
}

// AuditSink is where decisions go: the store's audit log, or the CA's
// audit upload for proxies without database access (FeedClient).
type AuditSink interface {
	AppendAuditBatch(ctx context.Context, records []store.AuditRecord) error
	TouchDevice(ctx context.Context, tenantID, deviceID string, at time.Time, ip string) error
}

// NewAuditor makes an auditor with room for size pending events.
func NewAuditor(st AuditSink, size int, log *slog.Logger) *Auditor {
	return &Auditor{st: st, log: log, events: make(chan auditEvent, size), full: make(chan struct{}, 1),
		gaps: map[string]store.AuditGap{}, gapEvery: gapEvery, drainFor: auditDrainTimeout, touched: map[string]time.Time{}}
}

// Dropped is the number of events lost to a full buffer or a failed write.
func (a *Auditor) Dropped() int64 { return a.dropped.Load() }

// Record queues one decision. Decisions without an identity (no or
// invalid certificate) belong to no store and are only logged.
func (a *Auditor) Record(ip string, g Grant, point, path string, reason Reason) {
	if a == nil {
		return
	}
	if g.Principal.TenantID == "" {
		a.log.Info("high-risk request refused", "reason", reason.String(), "permission", point, "path", path, "client_ip", ip)
		return
	}
	if !reason.Allowed() {
		// Operators tailing the process log see refusals of known devices
		// too, not only in the audit table. Codes and names only: no
		// certificate, cookie or header value.
		a.log.Info("high-risk request refused", "reason", reason.String(), "sub_account", g.SubName,
			"device", g.Principal.DeviceID, "permission", point, "path", path, "client_ip", ip)
	}
	ev := auditEvent{at: time.Now(), key: auditKey{tenant: g.Principal.TenantID, sub: g.SubName, ip: ip,
		reason: reason, device: g.Principal.DeviceID, point: point, path: path}}
	if !a.enqueue(ev) {
		a.lost(ev.key.tenant, 1, ev.at, ev.at)
	}
	if len(a.events) >= cap(a.events)/2 {
		select {
		case a.full <- struct{}{}:
		default: // already signalled
		}
	}
}

// enqueue puts ev in the buffer unless it is full or Run has stopped.
func (a *Auditor) enqueue(ev auditEvent) bool {
	a.stopMu.RLock()
	defer a.stopMu.RUnlock()
	if a.stopped {
		return false
	}
	select {
	case a.events <- ev:
		return true
	default:
		return false
	}
}

// maxAuditBatch bounds how many queued events share one transaction, and
// auditLinger how long the writer waits to fill one: each commit is
// costly, and a decision reaches the log at most ~auditLinger later.
const (
	maxAuditBatch = 2048
	auditLinger   = 100 * time.Millisecond
)

// auditWriteTimeout bounds one write (a batch, or the gap entries), and
// auditDrainTimeout the last writes at shutdown, all of them together.
const (
	auditWriteTimeout = 5 * time.Second
	auditDrainTimeout = 5 * time.Second
)

// gapEvery spaces the gap writes: under a sustained overload a store gets
// one gap entry per period (not one per batch), and a store that keeps
// refusing costs one attempt per period.
const gapEvery = 5 * time.Second

// Run writes queued events in batches until ctx ends: whatever has queued
// while the previous batch was written goes into one transaction. When ctx
// ends it stops taking events (later ones are counted as dropped), writes
// every queued one and the pending gap entries within auditDrainTimeout,
// and returns nil: a failed write costs events (counted, and recorded as a
// gap), never the auditor.
func (a *Auditor) Run(ctx context.Context) error {
	batch := make([]auditEvent, 0, maxAuditBatch)
	for {
		if ctx.Err() != nil { // checked first: select picks at random among ready cases
			a.drain(batch[:0])
			return nil
		}
		var retry <-chan time.Time // gaps are recorded even when no request comes
		if a.gapsPending() {
			retry = time.After(time.Until(a.nextGapTry))
		}
		select {
		case <-ctx.Done():
			continue
		case <-retry:
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
			a.writeGaps(wctx)
			cancel()
			continue
		case ev := <-a.events:
			batch = append(batch[:0], ev)
		}
		// Let the batch fill without being woken for every event (a
		// wake-up per request cost more than writing the batch); a buffer
		// half full cuts the wait short.
		linger := time.NewTimer(auditLinger)
		select {
		case <-linger.C:
		case <-a.full:
		case <-ctx.Done():
		}
		linger.Stop()
		if ctx.Err() != nil {
			a.drain(batch)
			return nil
		}
		batch = a.fill(batch)
		// A write under way when ctx ends finishes: decisions taken are kept.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
		a.write(wctx, batch)
		cancel()
	}
}

// fill adds queued events to batch, up to maxAuditBatch, without waiting.
func (a *Auditor) fill(batch []auditEvent) []auditEvent {
	for len(batch) < maxAuditBatch {
		select {
		case ev := <-a.events:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// write appends a batch (coalesced) and the devices' "last seen"; a failed
// append counts the batch as lost. Once the store answers again, the
// pending gap entries go too.
func (a *Auditor) write(ctx context.Context, batch []auditEvent) {
	if err := a.st.AppendAuditBatch(ctx, coalesce(batch)); err != nil {
		a.lostBatch(batch)
		a.log.Error("audit write failed; events dropped", "events", len(batch), "err", err)
	} else if a.gapsPending() && !time.Now().Before(a.nextGapTry) {
		a.writeGaps(ctx)
	}
	if ctx.Err() == nil { // at shutdown, past the deadline: one log line, not one per device
		a.touchDevices(ctx, batch)
	}
}

// drain ends the auditor's intake and writes batch and whatever is queued: the
// listeners have shut down by now, so these are the decisions of the last
// requests answered. The gaps go last, so a loss during the drain itself
// is recorded too (if the store still answers).
func (a *Auditor) drain(batch []auditEvent) {
	a.stopMu.Lock()
	a.stopped = true
	a.stopMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), a.drainFor)
	defer cancel()
	for {
		if batch = a.fill(batch); len(batch) == 0 {
			break
		}
		a.write(ctx, batch)
		batch = batch[:0]
	}
	if a.gapsPending() {
		a.writeGaps(ctx)
	}
}

// lost counts n events of tenant between from and to as dropped and keeps
// them for the tenant's gap entry. Taking the lock only on this path keeps
// the request path lock-free while the buffer has room.
func (a *Auditor) lost(tenant string, n int64, from, to time.Time) {
	a.dropped.Add(n)
	a.addGap(tenant, store.AuditGap{Events: n, From: from, To: to})
}

// lostBatch records a batch whose write failed.
func (a *Auditor) lostBatch(batch []auditEvent) {
	for _, ev := range batch {
		a.lost(ev.key.tenant, 1, ev.at, ev.at)
	}
}

// addGap merges g into the tenant's pending gap.
func (a *Auditor) addGap(tenant string, g store.AuditGap) {
	a.gapMu.Lock()
	defer a.gapMu.Unlock()
	cur, ok := a.gaps[tenant]
	if !ok {
		a.gaps[tenant] = g
		return
	}
	cur.Events += g.Events
	if g.From.Before(cur.From) {
		cur.From = g.From
	}
	if g.To.After(cur.To) {
		cur.To = g.To
	}
	a.gaps[tenant] = cur
}

func (a *Auditor) gapsPending() bool {
	a.gapMu.Lock()
	defer a.gapMu.Unlock()
	return len(a.gaps) > 0
}

// writeGaps appends one gap entry per store that lost events, each in its
// own write so that a store that refuses (e.g. deleted, or outside a feed
// certificate's scope) does not hold back the others. What fails stays
// pending for the next try. ctx bounds all the writes together.
func (a *Auditor) writeGaps(ctx context.Context) {
	a.gapMu.Lock()
	gaps := a.gaps
	a.gaps = map[string]store.AuditGap{}
	a.gapMu.Unlock()
	tenants := make([]string, 0, len(gaps))
	for t := range gaps {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		g := gaps[t]
		if err := a.st.AppendAuditBatch(ctx, []store.AuditRecord{{TenantID: t, Entry: g.Entry()}}); err != nil {
			a.addGap(t, g)
			a.log.Error("audit gap not recorded yet", "store", t, "events", g.Events, "err", err)
			continue
		}
		a.log.Warn("audit gap recorded", "store", t, "events", g.Events, "from", g.From, "to", g.To)
	}
	a.nextGapTry = time.Now().Add(a.gapEvery)
}

// coalesce turns a batch into audit records: identical decisions (same
// sub-account, device, client IP, permission, path and outcome) within one
// batch, i.e. a few tens of milliseconds, become one record that carries
// their exact "count" and the "last" time. Every decision is still
// accounted for, and a busy page costs the log one row per batch instead
// of one per request.
func coalesce(batch []auditEvent) []store.AuditRecord {
	records := make([]store.AuditRecord, 0, len(batch))
	index := make(map[auditKey]int, len(batch))
	counts := make([]int, 0, len(batch))
	for _, ev := range batch {
		if i, ok := index[ev.key]; ok {
			counts[i]++
			records[i].Entry.Detail["last"] = ev.at.UTC().Format(time.RFC3339Nano)
			continue
		}
		index[ev.key] = len(records)
		counts = append(counts, 1)
		k := ev.key
		outcome := "deny"
		if k.reason == ReasonAllowed {
			outcome = "allow"
		}
		records = append(records, store.AuditRecord{TenantID: k.tenant, Entry: store.AuditEntry{
			Time:    ev.at,
			Actor:   store.Actor{Kind: "proxy", Name: k.sub, IP: k.ip},
			Action:  "proxy." + outcome,
			Target:  k.sub,
			Outcome: k.reason.String(),
			Detail:  map[string]string{"device": k.device, "permission": k.point, "path": k.path},
		}})
	}
	for i, n := range counts {
		if n > 1 {
			records[i].Entry.Detail["count"] = strconv.Itoa(n)
		}
	}
	return records
}

// touchDevices records "last seen" (time, client IP) of the devices whose
// requests were allowed, at most once per lastSeenEvery per device.
func (a *Auditor) touchDevices(ctx context.Context, batch []auditEvent) {
	for i := len(batch) - 1; i >= 0; i-- { // newest first
		k := batch[i].key
		if k.reason != ReasonAllowed || k.device == "" {
			continue
		}
		if last, ok := a.touched[k.device]; ok && batch[i].at.Sub(last) < lastSeenEvery {
			continue
		}
		a.touched[k.device] = batch[i].at
		if err := a.st.TouchDevice(ctx, k.tenant, k.device, batch[i].at, k.ip); err != nil {
			a.log.Warn("last-seen update failed", "device", k.device, "err", err)
		}
	}
	if len(a.touched) > 100_000 { // bounded: forget, at worst one extra write each
		a.touched = map[string]time.Time{}
	}
}
