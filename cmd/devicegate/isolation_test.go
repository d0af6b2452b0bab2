package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/internal/routetable"
)

// adminCommands lists the admin CLI's commands from the table its
// dispatch and usage are made of, so a new command is a new command the
// matrix must cover.
func adminCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, c := range adminTable() {
		cmds = append(cmds, c.name)
	}
	return cmds
}

// cliIso is two stores in one data directory: A ("shop", alice) and B
// ("other", bee, protected, with a device, and wasp).
type cliIso struct {
	cfg            string
	beeID, devID   string
	devSerial, bID string
	waspID         string // B's second sub-account, whose name A takes too
}

// bState is B as the CLI shows it: sub-accounts, devices, audit chain.
func (x *cliIso) bState(t *testing.T) string {
	t.Helper()
	return mustCLI(t, "admin", "--config", x.cfg, "sub", "list", "other", "--json") +
		mustCLI(t, "admin", "--config", x.cfg, "sub", "devices", "other:bee", "--json") +
		mustCLI(t, "admin", "--config", x.cfg, "audit", "other", "--json")
}

// refusedInA runs args (with B's sub-account given as A's) and wants a
// non-zero exit that says it is not found in A.
func (x *cliIso) refusedInA(t *testing.T, args ...string) {
	t.Helper()
	code, out, errOut := cli(t, append([]string{"admin", "--config", x.cfg}, args...)...)
	if code == 0 || !strings.Contains(errOut, "not found") || !strings.Contains(errOut, `"shop:`) {
		t.Fatalf("admin %s: exit %d, stdout %q, stderr %q; want refused as not found in store shop",
			strings.Join(args, " "), code, out, errOut)
	}
}

func adminIsolationCases() map[string]struct {
	exempt string
	run    func(t *testing.T, x *cliIso)
} {
	type c = struct {
		exempt string
		run    func(t *testing.T, x *cliIso)
	}
	// subCmd: B's sub-account, by name and by id, given with store A.
	subCmd := func(cmd string, extra ...string) c {
		return c{run: func(t *testing.T, x *cliIso) {
			for _, target := range []string{"shop:bee", "shop:" + x.beeID} {
				x.refusedInA(t, append(append(strings.Fields(cmd), target), extra...)...)
			}
		}}
	}
	const operator = "operator-wide by design: no STORE argument, the operator CLI acts for every store (or, for proxies, for none)"
	return map[string]c{
		"store add":           {exempt: operator},
		"store list":          {exempt: operator},
		"owner set":           {exempt: "takes only the store it acts on; no ids of another store"},
		"owner cert-required": {exempt: "takes only the store it acts on; no ids of another store (TestOwnerCertRequiredCLI)"},
		// B's sub-account given with store A: not found in A; B's
		// verification (in B's audit chain) does not move.
		"sub verify approve":  subCmd("sub verify approve"),
		"sub verify reject":   subCmd("sub verify reject", "--reason", "not this person"),
		"sub verify unfreeze": subCmd("sub verify unfreeze"),
		"sub verify unbind":   subCmd("sub verify unbind"),
		// A name B uses is free in A: created in A, nothing in B.
		"sub add": {run: func(t *testing.T, x *cliIso) {
			mustCLI(t, "admin", "--config", x.cfg, "sub", "add", "shop:wasp", "--role", "finance")
			if out := mustCLI(t, "admin", "--config", x.cfg, "sub", "show", "shop:wasp", "--json"); strings.Contains(out, x.waspID) {
				t.Fatalf("shop:wasp is B's sub-account: %s", out)
			}
		}},
		"sub list": {run: func(t *testing.T, x *cliIso) {
			for _, q := range []string{"bee", x.beeID} {
				if out := mustCLI(t, "admin", "--config", x.cfg, "sub", "list", "shop", "--search", q, "--json"); strings.Contains(out, x.beeID) {
					t.Fatalf("sub list shop --search %s shows B's sub-account: %s", q, out)
				}
			}
		}},
		"sub show":       subCmd("sub show"),
		"sub phone":      subCmd("sub phone"),
		"sub protect":    subCmd("sub protect", "--devices", "1"),
		"sub ticket":     subCmd("sub ticket"),
		"sub devices":    subCmd("sub devices"),
		"sub depart":     subCmd("sub depart"),
		"sub restore":    subCmd("sub restore"),
		"sub freeze":     subCmd("sub freeze"),
		"sub revoke-all": subCmd("sub revoke-all"),
		"sub window":     subCmd("sub window", "--until", "2030-01-01"),
		"sub position":   subCmd("sub position", "--position", "finance"),
		// Positions are named by their catalog key, the same in every
		// store: A's edits and resets of the position B's bee holds must
		// leave B (its sub-accounts, policy and chain) as it was.
		"position set": {run: func(t *testing.T, x *cliIso) {
			mustCLI(t, "admin", "--config", x.cfg, "position", "set", "shop", "operations", "--points", "shipping")
		}},
		"position reset": {run: func(t *testing.T, x *cliIso) {
			mustCLI(t, "admin", "--config", x.cfg, "position", "reset", "shop", "operations")
		}},
		"position list": {run: func(t *testing.T, x *cliIso) {
			if out := mustCLI(t, "admin", "--config", x.cfg, "position", "list", "shop", "--json"); strings.Contains(out, x.bID) || strings.Contains(out, "bee") {
				t.Fatalf("position list shop shows B: %s", out)
			}
		}},
		"device revoke": {exempt: operator + "; a device is named by its globally unique id or serial"},

		// Re-applies a saved CRL after a restore (docs/operations.md).
		"device revoke-from-crl": {exempt: operator + "; the CRL is the whole CA's, checked against its device intermediate"},

		// B's device, by id and by serial, given with store A: not found in A.
		"device allow-renew": {run: func(t *testing.T, x *cliIso) {
			for _, target := range []string{x.devID, x.devSerial} {
				code, out, errOut := cli(t, "admin", "--config", x.cfg, "device", "allow-renew", "shop", target)
				if code == 0 || !strings.Contains(errOut, "not found") || !strings.Contains(errOut, `in store "shop"`) {
					t.Fatalf("device allow-renew shop %s: exit %d, stdout %q, stderr %q; want refused as not found in store shop", target, code, out, errOut)
				}
			}
		}},
		"proxy list":        {exempt: operator},
		"intermediate list": {exempt: operator + "; counts every store's devices per intermediate (the CA's, shared by all stores), names no device or store"},
		"proxy revoke":      {exempt: operator},
		"audit": {run: func(t *testing.T, x *cliIso) {
			for _, target := range []string{"other:bee", "shop:bee", x.beeID, x.devID, x.devSerial} {
				out := mustCLI(t, "admin", "--config", x.cfg, "audit", "shop", "--target", target, "--json")
				if strings.Contains(out, x.bID) || strings.Contains(out, "other:bee") || strings.Contains(out, x.devSerial) {
					t.Fatalf("audit shop --target %s shows B's events: %s", target, out)
				}
			}
		}},
		"audit verify": {exempt: "verifies the chain of the store it names; no ids of another store"},
	}
}

// TestIsolationAdminCLI: every admin command that takes a STORE is refused
// ("not found" in that store) when given store B's sub-account (by name
// or id) with store A, and changes nothing in B; listings of A show
// nothing of B. The command list is read from adminTable, so a new
// command without a case (or a reasoned exemption) fails the test.
func TestIsolationAdminCLI(t *testing.T) {
	cmds := adminCommands(t)
	cases := adminIsolationCases()
	routetable.Covered(t, "admin command", "adminIsolationCases", cmds, cases)
	if t.Failed() {
		return
	}
	x := &cliIso{cfg: writeConfig(t)}
	mustCLI(t, "ca", "--config", x.cfg, "init")
	mustCLI(t, "admin", "--config", x.cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", x.cfg, "store", "add", "other")
	mustCLI(t, "admin", "--config", x.cfg, "sub", "add", "shop:alice", "--role", "finance")
	mustCLI(t, "admin", "--config", x.cfg, "sub", "add", "other:bee", "--role", "operations")
	mustCLI(t, "admin", "--config", x.cfg, "sub", "phone", "other:bee")
	wasp := mustCLI(t, "admin", "--config", x.cfg, "sub", "add", "other:wasp", "--role", "finance")
	x.waspID = wasp[strings.Index(wasp, "(id ")+4 : strings.Index(wasp, ",")]
	mustCLI(t, "admin", "--config", x.cfg, "sub", "protect", "other:bee", "--devices", "2")
	x.enrollBee(t)

	ran := 0
	for _, cmd := range cmds {
		c := cases[cmd]
		if c.exempt != "" {
			continue
		}
		ran++
		t.Run(cmd, func(t *testing.T) {
			before := x.bState(t)
			c.run(t, x)
			if after := x.bState(t); after != before {
				t.Errorf("B changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Logf("%d commands, %d with cross-store attempts, %d exempt", len(cmds), ran, len(cmds)-ran)
	mustCLI(t, "admin", "--config", x.cfg, "audit", "verify", "other")
}

// enrollBee gives B's sub-account a device through the CA in-process.
func (x *cliIso) enrollBee(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	a, err := openApp(ctx, x.cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	code := strings.TrimSpace(mustCLI(t, "admin", "--config", x.cfg, "sub", "ticket", "other:bee"))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	is, err := a.ca.Issue(ctx, ca.IssueRequest{Code: code, CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Label: "b pc"})
	if err != nil {
		t.Fatal(err)
	}
	x.beeID, x.devID, x.devSerial, x.bID = is.SubAccount.ID, is.Device.ID, is.Device.Serial, is.SubAccount.TenantID
}
