package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// AuditGapAction marks an audit entry that records decisions a proxy could
// not write (its buffer was full or the audit store failed). It is a
// proxy.* action because a proxy may only append proxy.* entries through
// the CA; the entry goes through the normal hash chain.
const AuditGapAction = "proxy.audit_gap"

// AuditGap is a span of one store's lost audit events.
type AuditGap struct {
	Seq      int64 // of the gap entry (0 before it is stored)
	Events   int64
	From, To time.Time // first and last lost event
}

// Entry is the audit entry that records g.
func (g AuditGap) Entry() AuditEntry {
	return AuditEntry{
		Actor:   Actor{Kind: "proxy"},
		Action:  AuditGapAction,
		Outcome: "events_lost",
		Detail: map[string]string{
			"events": strconv.FormatInt(g.Events, 10),
			"from":   g.From.UTC().Format(time.RFC3339Nano),
			"to":     g.To.UTC().Format(time.RFC3339Nano),
		},
	}
}

// ParseAuditGap reads a gap entry back.
func ParseAuditGap(e AuditEvent) (AuditGap, error) {
	if e.Action != AuditGapAction {
		return AuditGap{}, fmt.Errorf("audit %d is not a gap entry", e.Seq)
	}
	n, err := strconv.ParseInt(e.Detail["events"], 10, 64)
	if err != nil || n < 1 {
		return AuditGap{}, fmt.Errorf("audit gap %d: bad event count", e.Seq)
	}
	from, err1 := time.Parse(time.RFC3339Nano, e.Detail["from"])
	to, err2 := time.Parse(time.RFC3339Nano, e.Detail["to"])
	if err := errors.Join(err1, err2); err != nil || to.Before(from) {
		return AuditGap{}, fmt.Errorf("audit gap %d: bad time span", e.Seq)
	}
	return AuditGap{Seq: e.Seq, Events: n, From: from, To: to}, nil
}

// AuditGaps lists the gap entries of a tenant's audit log in seq order.
// Run VerifyAudit first: only an intact chain makes them trustworthy.
func AuditGaps(ctx context.Context, st interface {
	ListAudit(ctx context.Context, tenantID string, f AuditFilter) ([]AuditEvent, error)
}, tenantID string) ([]AuditGap, error) {
	var gaps []AuditGap
	for after := int64(0); ; {
		evs, err := st.ListAudit(ctx, tenantID, AuditFilter{Action: AuditGapAction, AfterSeq: after})
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if e.Action != AuditGapAction { // a prefix filter: proxy.audit_gap_x would match
				continue
			}
			g, err := ParseAuditGap(e)
			if err != nil {
				return nil, err
			}
			gaps = append(gaps, g)
		}
		if len(evs) == 0 {
			return gaps, nil
		}
		after = evs[len(evs)-1].Seq
	}
}

// DescribeAuditGaps is the one-line summary `audit verify` prints, e.g.
// "1 gap: 37 events lost between T1 and T2".
func DescribeAuditGaps(gaps []AuditGap) string {
	if len(gaps) == 0 {
		return "no gaps"
	}
	var events int64
	from, to := gaps[0].From, gaps[0].To
	for _, g := range gaps {
		events += g.Events
		if g.From.Before(from) {
			from = g.From
		}
		if g.To.After(to) {
			to = g.To
		}
	}
	noun := "gaps"
	if len(gaps) == 1 {
		noun = "gap"
	}
	return fmt.Sprintf("%d %s: %d events lost between %s and %s", len(gaps), noun, events,
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
}
