package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// `admin audit verify` says when an intact chain records lost decisions
// (a proxy's gap entries), instead of only "verifies".
func TestAdminAuditVerifyReportsGaps(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	if out := mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop"); out != "audit chain of shop verifies; no gaps\n" {
		t.Fatalf("no losses: %q", out)
	}

	// What a proxy's auditor appends after its audit store failed.
	ctx := context.Background()
	c, err := loadConfig(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := st.GetTenantByName(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	gap := store.AuditGap{Events: 37, From: from, To: from.Add(90 * time.Second)}
	if err := st.AppendAuditBatch(ctx, []store.AuditRecord{{TenantID: tn.ID, Entry: gap.Entry()}}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out := mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop")
	want := "audit chain of shop verifies; 1 gap: 37 events lost between 2026-12-02T10:00:00Z and 2026-12-02T10:01:30Z\n"
	if !strings.HasPrefix(out, want) || !strings.Contains(out, ": 37 events lost between 2026-12-02T10:00:00Z and 2026-12-02T10:01:30Z\n") {
		t.Fatalf("with a gap:\n%s\nwant it to start with %q and list the gap", out, want)
	}
	t.Log(out)
}
