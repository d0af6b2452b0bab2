package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
)

// enrollIn gives sub-account full ("store:name", protected) a device
// through the CA in-process.
func enrollIn(t *testing.T, cfg, full string) *ca.Issued {
	t.Helper()
	ctx := context.Background()
	a, err := openApp(ctx, cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	code := strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", full))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	is, err := a.ca.Issue(ctx, ca.IssueRequest{Code: code, CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Label: "pc"})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// TestAdminDeviceAllowRenew: `device allow-renew STORE DEVICE` lets a device
// of STORE renew once early (7 days by default, by id or serial, audited);
// a bad --for, an unknown device or another store's device is refused and
// changes nothing.
func TestAdminDeviceAllowRenew(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	for _, full := range []string{"shop:alice", "other:bee"} {
		name, _, _ := strings.Cut(full, ":")
		mustCLI(t, "admin", "--config", cfg, "store", "add", name)
		mustCLI(t, "admin", "--config", cfg, "sub", "add", full, "--role", "finance")
		mustCLI(t, "admin", "--config", cfg, "sub", "phone", full)
		mustCLI(t, "admin", "--config", cfg, "sub", "protect", full, "--devices", "2")
	}
	mine, theirs := enrollIn(t, cfg, "shop:alice"), enrollIn(t, cfg, "other:bee")
	allowed := func(full string) time.Time {
		t.Helper()
		var listing struct {
			Devices []struct {
				RenewAllowedUntil time.Time `json:"renew_allowed_until"`
			}
		}
		if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "sub", "devices", full, "--json")), &listing); err != nil || len(listing.Devices) != 1 {
			t.Fatalf("sub devices %s: %v", full, err)
		}
		return listing.Devices[0].RenewAllowedUntil
	}
	audits := func() string {
		return mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json") + mustCLI(t, "admin", "--config", cfg, "audit", "other", "--json")
	}

	before := audits()
	otherBefore := mustCLI(t, "admin", "--config", cfg, "audit", "other", "--json")
	for _, tc := range []struct{ args []string }{
		{[]string{"shop", theirs.Device.ID}},
		{[]string{"shop", theirs.Device.Serial}},
		{[]string{"shop", "deadbeef"}},
		{[]string{"nostore", mine.Device.ID}},
		{[]string{"shop", mine.Device.ID, "--for", "31d"}},
		{[]string{"shop", mine.Device.ID, "--for", "0d"}},
		{[]string{"shop", mine.Device.ID, "--for", "-1h"}},
		{[]string{"shop", mine.Device.ID, "--for", "soon"}},
		{[]string{"shop"}},
	} {
		args := append([]string{"admin", "--config", cfg, "device", "allow-renew"}, tc.args...)
		if code, out, errOut := cli(t, args...); code == 0 || errOut == "" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want refused", strings.Join(tc.args, " "), code, out, errOut)
		}
	}
	if code, _, errOut := cli(t, "admin", "--config", cfg, "device", "allow-renew", "shop", theirs.Device.ID); !strings.Contains(errOut, `not found`) || !strings.Contains(errOut, `in store "shop"`) || code == 0 {
		t.Fatalf("another store's device: %q", errOut)
	}
	if audits() != before || !allowed("shop:alice").IsZero() || !allowed("other:bee").IsZero() {
		t.Fatal("a refused allow-renew changed something")
	}

	start := time.Now()
	out := mustCLI(t, "admin", "--config", cfg, "device", "allow-renew", "shop", mine.Device.ID)
	if !strings.Contains(out, "may renew once before") {
		t.Fatalf("output %q", out)
	}
	if got := allowed("shop:alice"); got.Before(start.Add(7*24*time.Hour-time.Second)) || got.After(time.Now().Add(7*24*time.Hour)) {
		t.Fatalf("allowed until %v, want 7 days from now", got)
	}
	mustCLI(t, "admin", "--config", cfg, "device", "allow-renew", "shop", mine.Device.Serial, "--for", "30d")
	if got := allowed("shop:alice"); got.Before(start.Add(store.MaxRenewAllowance - time.Minute)) {
		t.Fatalf("--for 30d: allowed until %v", got)
	}
	if !strings.Contains(mustCLI(t, "admin", "--config", cfg, "audit", "shop", "--json"), "device.renew_allowed") {
		t.Fatal("no device.renew_allowed audit event")
	}
	if !allowed("other:bee").IsZero() || mustCLI(t, "admin", "--config", cfg, "audit", "other", "--json") != otherBefore {
		t.Fatal("the other store changed")
	}
	mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop")
}
