package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A temporary sub-account from the CLI: created with a window, listed as
// temporary, refused an enrollment code once the window is over, extended
// by an audited owner action; bad windows change nothing.
func TestTemporarySubAccountCLI(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	// The CLI runs on the real clock: a window that is already over, and
	// one around now.
	out := mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:promo", "--role", "customer-service", "--from", "2020-11-01", "--until", "2020-12-21")
	if !strings.Contains(out, "temporary 2020-11-01 00:00 to 2020-12-22 00:00") {
		t.Fatalf("sub add: %q", out)
	}
	today := time.Now().Format(time.DateOnly)
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:now", "--role", "customer-service", "--until", today)
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:staff", "--role", "finance")
	list := mustCLI(t, "admin", "--config", cfg, "sub", "list", "shop")
	for name, want := range map[string]string{"shop:promo": "temporary 2020-11-01", "shop:now": "temporary until", "shop:staff": "-"} {
		line := lineWith(list, name)
		if !strings.HasSuffix(strings.TrimSpace(line), want) && !strings.Contains(line, want) {
			t.Fatalf("sub list: %s: %q, want %q\n%s", name, line, want, list)
		}
	}
	var subs []subJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "sub", "list", "shop", "--json")), &subs); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if s.Temporary != (s.Name != "shop:staff") {
			t.Fatalf("--json temporary: %+v", s)
		}
	}

	// Over: no enrollment code, whatever the protection.
	mustCLI(t, "admin", "--config", cfg, "sub", "phone", "shop:promo")
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "shop:promo", "--devices", "1")
	if code, _, errOut := cli(t, "admin", "--config", cfg, "sub", "ticket", "shop:promo"); code == 0 || !strings.Contains(errOut, "outside_validity_window") {
		t.Fatalf("ticket after the window: %d %q", code, errOut)
	}

	before := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json")
	for _, args := range [][]string{
		{"sub", "window", "shop:promo"},                          // no --until
		{"sub", "window", "shop:promo", "--until", "2020-10-01"}, // before the start
		{"sub", "window", "shop:promo", "--until", "someday"},    // not a date
		{"sub", "window", "shop:promo", "--from", "2027-01-02", "--until", "2027-01-01"},
		{"sub", "window", "shop:ghost", "--until", "2030-01-01"},
		{"sub", "add", "shop:x", "--role", "finance", "--from", "2027-01-02", "--until", "2027-01-01"},
	} {
		if code, _, errOut := cli(t, append([]string{"admin", "--config", cfg}, args...)...); code == 0 || errOut == "" {
			t.Fatalf("%v: exit %d %q", args, code, errOut)
		}
	}
	if after := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json"); after != before {
		t.Fatal("refused window changes wrote to the audit log")
	}

	// Extended: the start stays, the end moves, a code is issued again.
	next := time.Now().AddDate(0, 1, 0).Format(time.DateOnly)
	out = mustCLI(t, "admin", "--config", cfg, "sub", "window", "shop:promo", "--until", next)
	if !strings.Contains(out, "temporary 2020-11-01 00:00 to") {
		t.Fatalf("sub window: %q", out)
	}
	mustCLI(t, "admin", "--config", cfg, "sub", "ticket", "shop:promo")
	audit := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--target", "shop:promo")
	if !strings.Contains(audit, "sub.validity") {
		t.Fatalf("the extension is not in the audit log:\n%s", audit)
	}
	if out := mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop"); !strings.Contains(out, "verifies") {
		t.Fatalf("audit verify: %q", out)
	}
}

// Positions per store from the CLI: list with high-risk marks, edit (only
// catalog points), reset, a sub-account's position and supplementary
// points, and names never reused.
func TestPositionCLI(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "other")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:alice", "--role", "finance")

	list := mustCLI(t, "admin", "--config", cfg, "position", "list", "shop")
	if line := lineWith(list, "finance ("); !strings.Contains(line, "default") || !strings.Contains(line, "orders.export*") || strings.Contains(line, "reports*") {
		t.Fatalf("position list: %q", line)
	}
	before := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json")
	for _, args := range [][]string{
		{"position", "set", "shop", "boss", "--points", "reports"},
		{"position", "set", "shop", "finance", "--points", "reports,nope"},
		{"position", "set", "nostore", "finance", "--points", "reports"},
		{"position", "reset", "shop", "finance"}, // never edited
		{"sub", "position", "shop:alice", "--role", "finance", "--grant", "nope"},
		{"sub", "add", "shop:alice", "--role", "operations"},
	} {
		code, _, errOut := cli(t, append([]string{"admin", "--config", cfg}, args...)...)
		if code == 0 || errOut == "" {
			t.Fatalf("%v: exit %d %q", args, code, errOut)
		}
	}
	if after := mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json"); after != before {
		t.Fatal("refused position commands wrote to the audit log")
	}

	mustCLI(t, "admin", "--config", cfg, "position", "set", "shop", "finance", "--points", "reports,refunds")
	list = mustCLI(t, "admin", "--config", cfg, "position", "list", "shop")
	if line := lineWith(list, "finance ("); !strings.Contains(line, "this store") || !strings.Contains(line, "refunds,reports") {
		t.Fatalf("after set: %q", line)
	}
	if line := lineWith(mustCLI(t, "admin", "--config", cfg, "position", "list", "other"), "finance ("); !strings.Contains(line, "default") {
		t.Fatalf("another store's position changed: %q", line)
	}
	out := mustCLI(t, "admin", "--config", cfg, "sub", "position", "shop:alice", "--role", "finance", "--grant", "orders.export")
	if !strings.Contains(out, "supplementary points orders.export") {
		t.Fatalf("sub position: %q", out)
	}
	mustCLI(t, "admin", "--config", cfg, "position", "reset", "shop", "finance")
	audit := mustCLI(t, "admin", "--config", cfg, "audit", "shop")
	for _, want := range []string{"position.edit\tfinance", "sub.role\tshop:alice", "position.reset\tfinance"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit lacks %q:\n%s", want, audit)
		}
	}

	// Departed names stay taken; the message says where to look.
	mustCLI(t, "admin", "--config", cfg, "sub", "depart", "shop:alice")
	code, _, errOut := cli(t, "admin", "--config", cfg, "sub", "add", "shop:alice", "--role", "finance")
	if code == 0 || !strings.Contains(errOut, "never reused") || !strings.Contains(errOut, "departed") {
		t.Fatalf("reusing a departed name: %d %q", code, errOut)
	}
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "other:alice", "--role", "finance")
	if out := mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop"); !strings.Contains(out, "verifies") {
		t.Fatalf("audit verify: %q", out)
	}
}

// lineWith is the first line of s containing sub ("" if none).
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
