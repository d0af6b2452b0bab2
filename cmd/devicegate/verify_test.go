package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestVerifyLinkPrintedBySubAdd: `sub add` prints the new sub-account's
// verification link (on the portal's address) and its 7-day deadline, and
// `audit verify` covers the verify.required record.
func TestVerifyLinkPrintedBySubAdd(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	out := mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:alice", "--position", "finance")
	if !regexp.MustCompile(`real-person verification: open https://localhost:8444/verify/[a-z2-7]{26} on the staff member's phone and log in as shop:alice; not verified by \d{4}-\d\d-\d\d \d\d:\d\d UTC -> frozen`).MatchString(out) {
		t.Fatalf("sub add output:\n%s", out)
	}
	audit := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json")
	if !strings.Contains(audit, "verify.required") {
		t.Fatalf("no verify.required record:\n%s", audit)
	}
	mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop")
}
