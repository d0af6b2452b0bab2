package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Auditor writes high-risk decisions to the store's audit log from a
// bounded buffer, so the request path never waits for the database. When
// the buffer is full the event is dropped and counted.
type Auditor struct {
	st      store.Store
	log     *slog.Logger
	events  chan auditEvent
	dropped atomic.Int64
}

type auditEvent store.AuditRecord

// NewAuditor makes an auditor with room for size pending events.
func NewAuditor(st store.Store, size int, log *slog.Logger) *Auditor {
	return &Auditor{st: st, log: log, events: make(chan auditEvent, size)}
}

// Dropped is the number of events lost to a full buffer.
func (a *Auditor) Dropped() int64 { return a.dropped.Load() }

// Record queues one decision. Decisions without an identity (no or
// invalid certificate) belong to no store and are only logged.
func (a *Auditor) Record(r *http.Request, g Grant, point, path, reason string) {
	if a == nil {
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	if g.Principal.TenantID == "" {
		a.log.Info("high-risk request refused", "reason", reason, "permission", point, "path", path, "client_ip", ip)
		return
	}
	outcome := "deny"
	if reason == ReasonCertificateValid {
		outcome = "allow"
	}
	ev := auditEvent{TenantID: g.Principal.TenantID, Entry: store.AuditEntry{
		Time:    time.Now(),
		Actor:   store.Actor{Kind: "proxy", Name: g.SubName, IP: ip},
		Action:  "proxy." + outcome,
		Target:  g.SubName,
		Outcome: reason,
		Detail:  map[string]string{"device": g.Principal.DeviceID, "permission": point, "path": path},
	}}
	select {
	case a.events <- ev:
	default:
		a.dropped.Add(1)
	}
}

// maxAuditBatch bounds how many queued events share one transaction, and
// auditLinger how long the writer waits to fill one: each commit is
// costly, and a decision reaches the log at most ~auditLinger later.
const (
	maxAuditBatch = 512
	auditLinger   = 20 * time.Millisecond
)

// Run writes queued events until ctx ends, in batches: whatever has queued
// while the previous batch was written goes into one transaction.
func (a *Auditor) Run(ctx context.Context) {
	batch := make([]store.AuditRecord, 0, maxAuditBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-a.events:
			batch = append(batch[:0], store.AuditRecord(ev))
		}
		linger := time.NewTimer(auditLinger)
	fill:
		for len(batch) < maxAuditBatch {
			select {
			case ev := <-a.events:
				batch = append(batch, store.AuditRecord(ev))
			case <-linger.C:
				break fill
			case <-ctx.Done():
				break fill
			}
		}
		linger.Stop()
		// Written even while shutting down: decisions already taken are kept.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := a.st.AppendAuditBatch(wctx, batch); err != nil {
			a.dropped.Add(int64(len(batch)))
			a.log.Error("audit write failed; events dropped", "events", len(batch), "err", err)
		}
		cancel()
	}
}
