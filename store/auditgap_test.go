package store

import (
	"testing"
	"time"
)

func TestAuditGapEntryRoundTrip(t *testing.T) {
	from := time.Date(2026, 12, 2, 10, 0, 0, 1, time.UTC)
	good := AuditGap{Events: 37, From: from, To: from.Add(time.Minute)}
	entry := func(change func(map[string]string)) AuditEvent {
		e := AuditEvent{AuditEntry: good.Entry(), Seq: 9}
		change(e.Detail)
		return e
	}
	tests := []struct {
		name string
		ev   AuditEvent
		ok   bool
	}{
		{"as written", entry(func(map[string]string) {}), true},
		{"not a gap", AuditEvent{AuditEntry: AuditEntry{Action: "proxy.allow", Detail: good.Entry().Detail}}, false},
		{"no count", entry(func(d map[string]string) { delete(d, "events") }), false},
		{"zero events", entry(func(d map[string]string) { d["events"] = "0" }), false},
		{"negative events", entry(func(d map[string]string) { d["events"] = "-3" }), false},
		{"count not a number", entry(func(d map[string]string) { d["events"] = "37x" }), false},
		{"bad time", entry(func(d map[string]string) { d["from"] = "yesterday" }), false},
		{"span backwards", entry(func(d map[string]string) { d["from"], d["to"] = d["to"], d["from"] }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseAuditGap(tc.ev)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (g.Events != good.Events || !g.From.Equal(good.From) || !g.To.Equal(good.To) || g.Seq != 9) {
				t.Fatalf("read back %+v, want %+v", g, good)
			}
		})
	}
	if got := DescribeAuditGaps(nil); got != "no gaps" {
		t.Fatalf("no gaps described as %q", got)
	}
}

// ParseAuditGap never panics, and what it accepts is a positive count over
// a forward span that writes back to the same entry.
func FuzzParseAuditGap(f *testing.F) {
	f.Add("37", "2026-12-02T10:00:00Z", "2026-12-02T10:01:00.5Z")
	f.Add("0", "x", "")
	f.Add("9223372036854775807", "2026-12-02T10:00:00+08:00", "2026-12-02T10:00:00Z")
	f.Fuzz(func(t *testing.T, events, from, to string) {
		ev := AuditEvent{AuditEntry: AuditEntry{Action: AuditGapAction, Detail: map[string]string{"events": events, "from": from, "to": to}}}
		g, err := ParseAuditGap(ev)
		if err != nil {
			return
		}
		if g.Events < 1 || g.To.Before(g.From) {
			t.Fatalf("accepted %+v", g)
		}
		again, err := ParseAuditGap(AuditEvent{AuditEntry: g.Entry()})
		if err != nil || again.Events != g.Events || !again.From.Equal(g.From) || !again.To.Equal(g.To) {
			t.Fatalf("%+v does not round-trip: %+v %v", g, again, err)
		}
	})
}
