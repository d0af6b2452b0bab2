package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMultiNodeRevokeWaitEdge: `device revoke --wait` counts an edge proxy
// (no database: fed by a CA node's feed over mTLS, acknowledging through
// it) beside the proxies on PostgreSQL, in TestMultiNode's installation
// (2 CA nodes, 3 database proxies and the edge, each its own process):
//   - EdgeCounted: "applied on 4/4 proxies", and the edge refuses the
//     device at once when the CLI returns (its acknowledgment means the
//     revocation is in force there).
//   - StoppedEdgeNamed: the edge killed just before a revocation is still
//     live by its last acknowledgment, so the wait times out naming it
//     ("applied on 3/4 proxies; not yet on edge-1") and the CLI exits
//     non-zero.
func TestMultiNodeRevokeWaitEdge(t *testing.T) {
	m := startMultiNode(t)
	cfgA := filepath.Join(m.dir, "ca-a", "devicegate.yaml")
	edge := m.prox[mnDBProxies]
	applied := regexp.MustCompile(`(?m)^revoked; applied on 4/4 proxies in \d+ ms$`)

	t.Run("EdgeCounted", func(t *testing.T) {
		for round := range 3 {
			device, id := m.leeDevice(t) // passes every proxy, the edge included
			began := time.Now()
			code, out, errOut := cli(t, "admin", "--config", cfgA, "device", "revoke", id, "--wait")
			if code != 0 || !applied.MatchString(out) {
				t.Fatalf("round %d: revoke --wait: exit %d\n%s%s", round, code, out, errOut)
			}
			if got := whoami(device, edge.url); got != "device_not_active" {
				t.Fatalf("round %d: the edge acknowledged the revocation but says %q for the device", round, got)
			}
			t.Logf("round %d: %s (the CLI's run %v)", round, applied.FindString(out), time.Since(began).Round(time.Millisecond))
			device.CloseIdleConnections()
		}
	})

	t.Run("StoppedEdgeNamed", func(t *testing.T) {
		_, id := faultDevice(t, context.Background(), m.a.ca, m.shop.ID, m.lee.ID, m.roots)
		edge.proc.kill()
		code, out, errOut := cli(t, "admin", "--config", cfgA, "device", "revoke", id, "--wait", "--timeout", "1s")
		if code == 0 || !strings.Contains(out, "applied on 3/4 proxies; not yet on edge-1") || !strings.Contains(errOut, "edge-1") {
			t.Fatalf("revoke --wait with the edge stopped: exit %d\n%s%s", code, out, errOut)
		}
	})
}
