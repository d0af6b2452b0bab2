package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
)

// inApp runs fn on the config's data directory opened in-process (what
// the portal or a staff browser would do between CLI commands).
func inApp(t *testing.T, cfg string, fn func(ctx context.Context, a *app)) {
	t.Helper()
	ctx := context.Background()
	a, err := openApp(ctx, cfg, "", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fn(ctx, a)
}

func lastAudit(t *testing.T, ctx context.Context, a *app, storeName, action string) store.AuditEvent {
	t.Helper()
	tn, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := a.store.ListAudit(ctx, tn.ID, store.AuditFilter{Action: action})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no %s event (%v)", action, err)
	}
	return evs[len(evs)-1]
}

// TestOwnerCertRequiredCLI: `admin owner cert-required STORE --off` is the
// way back for an owner who lost the computer (audited as the CLI); --on
// needs an active owner computer; bad arguments change nothing.
func TestOwnerCertRequiredCLI(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	required := func() bool {
		var on bool
		inApp(t, cfg, func(ctx context.Context, a *app) {
			tn, err := a.store.GetTenantByName(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			on = tn.OwnerCertRequired
		})
		return on
	}
	for _, args := range [][]string{
		{"shop"}, {"shop", "--on", "--off"}, {"nowhere", "--off"},
		{"shop", "--on"}, // no owner computer yet
	} {
		if code, _, _ := cli(t, append([]string{"admin", "--config", cfg, "owner", "cert-required"}, args...)...); code == 0 || required() {
			t.Fatalf("owner cert-required %v: exit %d", args, code)
		}
	}
	// The owner installs a computer (as the portal's "My computers" does).
	var devID string
	inApp(t, cfg, func(ctx context.Context, a *app) {
		tn, _ := a.store.GetTenantByName(ctx, "shop")
		o, err := a.store.EnsureOwnerAccount(ctx, tn.ID, cliActor())
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		is, err := a.ca.Issue(ctx, ca.IssueRequest{TenantID: tn.ID, SubID: o.ID, Label: "office",
			CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
		if err != nil {
			t.Fatal(err)
		}
		devID = is.Device.ID
	})
	if out := mustCLI(t, "admin", "--config", cfg, "owner", "cert-required", "shop", "--on"); !strings.Contains(out, "is required") || !required() {
		t.Fatalf("--on: %q", out)
	}
	// The computer is lost: revoked, and the owner is let back in.
	mustCLI(t, "admin", "--config", cfg, "device", "revoke", devID)
	if out := mustCLI(t, "admin", "--config", cfg, "owner", "cert-required", "shop", "--off"); !strings.Contains(out, "not required") || required() {
		t.Fatalf("--off: %q", out)
	}
	inApp(t, cfg, func(ctx context.Context, a *app) {
		ev := lastAudit(t, ctx, a, "shop", "owner.cert_required")
		if ev.Actor.Kind != "cli" || ev.Detail["from"] != "true" || ev.Detail["to"] != "false" {
			t.Fatalf("audit event %+v", ev.AuditEntry)
		}
	})
	mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop")
}

// TestVerifyCLIOwnerSteps: `admin sub verify approve|reject|unfreeze|unbind`
// apply the owner console's rules (same states, same audit actions, actor
// the CLI); a step the state does not allow, a reject without a reason and
// another store's sub-account are refused and change nothing.
func TestVerifyCLIOwnerSteps(t *testing.T) {
	cfg := writeConfig(t)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "other")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:erin", "--position", "finance")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "other:erin", "--position", "finance")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:temp", "--position", "finance", "--until", "2099-01-01")
	state := func(full string) store.Verification {
		var v store.Verification
		inApp(t, cfg, func(ctx context.Context, a *app) {
			_, s, err := a.resolveSub(ctx, full)
			if err != nil {
				t.Fatal(err)
			}
			if v, err = a.store.GetVerification(ctx, s.TenantID, s.ID); err != nil {
				t.Fatal(err)
			}
		})
		return v
	}
	// The staff member submits (as the verification page does).
	submit := func(full, id string) {
		inApp(t, cfg, func(ctx context.Context, a *app) {
			_, s, _ := a.resolveSub(ctx, full)
			_, err := a.store.UpdateVerification(ctx, s.TenantID, s.ID, store.Actor{Kind: "sub", Name: full}, "verify.submit",
				func(v *store.Verification) (map[string]string, error) {
					v.State, v.SubmittedAt, v.StartedAt, v.Holder = store.VerifyUnderReview, time.Now(), time.Now(), "Erin"
					v.Person = &store.Person{IDNumber: id, Phone: "13800000000"}
					return nil, nil
				})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	refused := func(args ...string) {
		t.Helper()
		before := state(args[1])
		if code, out, _ := cli(t, append([]string{"admin", "--config", cfg, "sub", "verify"}, args...)...); code == 0 {
			t.Fatalf("sub verify %v accepted: %s", args, out)
		}
		if after := state(args[1]); after.State != before.State || after.Frozen != before.Frozen || after.Link != before.Link {
			t.Fatalf("refused sub verify %v changed %+v -> %+v", args, before, after)
		}
	}
	verify := func(args ...string) string {
		t.Helper()
		return mustCLI(t, append([]string{"admin", "--config", cfg, "sub", "verify"}, args...)...)
	}

	refused("approve", "shop:erin")  // not submitted
	refused("unfreeze", "shop:erin") // not frozen
	refused("unbind", "shop:erin")   // not verified
	if code, _, errOut := cli(t, "admin", "--config", cfg, "sub", "verify", "approve", "shop:temp"); code == 0 || !strings.Contains(errOut, "no real-person verification") {
		t.Fatalf("approve of a temporary account: %d %s", code, errOut)
	}

	submit("shop:erin", "110101199001011234")
	refused("reject", "shop:erin") // no reason
	if out := verify("reject", "shop:erin", "--reason", "photo unreadable"); !strings.Contains(out, "rejected") || state("shop:erin").Reason != "photo unreadable" {
		t.Fatalf("reject: %q", out)
	}
	submit("shop:erin", "110101199001011234")
	before := state("other:erin")
	if out := verify("approve", "shop:erin"); !strings.Contains(out, "verified") || state("shop:erin").State != store.VerifyVerified {
		t.Fatalf("approve: %q", out)
	}
	if after := state("other:erin"); after.State != before.State || after.Link != before.Link {
		t.Fatal("another store's sub-account of the same name changed")
	}
	oldLink := state("shop:erin").Link
	if out := verify("unbind", "shop:erin"); !strings.Contains(out, "not_started") || !strings.Contains(out, "/verify/") {
		t.Fatalf("unbind: %q", out)
	}
	if v := state("shop:erin"); v.State != store.VerifyNotStarted || v.Link == oldLink || v.Bound {
		t.Fatalf("after unbind: %+v", v)
	}

	// Frozen for not verifying (as the deadline job does), then lifted.
	inApp(t, cfg, func(ctx context.Context, a *app) {
		_, s, _ := a.resolveSub(ctx, "shop:erin")
		if _, err := a.store.UpdateVerification(ctx, s.TenantID, s.ID, store.Actor{Kind: "system", Name: "test"}, "verify.freeze",
			func(v *store.Verification) (map[string]string, error) { v.Frozen = true; return nil, nil }); err != nil {
			t.Fatal(err)
		}
	})
	if out := verify("unfreeze", "shop:erin"); state("shop:erin").Frozen {
		t.Fatalf("unfreeze: %q", out)
	}
	inApp(t, cfg, func(ctx context.Context, a *app) {
		for _, action := range []string{"verify.reject", "verify.approve", "verify.unbind", "verify.unfreeze"} {
			if ev := lastAudit(t, ctx, a, "shop", action); ev.Actor.Kind != "cli" || ev.Target != "shop:erin" {
				t.Fatalf("%s recorded as %+v", action, ev.AuditEntry)
			}
		}
	})
	mustCLI(t, "admin", "--config", cfg, "audit", "verify", "shop")
}

// TestOwnerConsoleListenerAsksOnlyThere: the design point of the owner's
// own certificate (docs/lifecycle.md). The staff portal's listener never
// asks a browser for a client certificate (no certificate picker on staff
// computers); the owner console's listener (portal.owner_listen) asks for
// one of the device intermediates, without requiring it.
func TestOwnerConsoleListenerAsksOnlyThere(t *testing.T) {
	cfg := writeConfig(t)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(data), "portal:\n  listen: 127.0.0.1:0\n", "portal:\n  listen: 127.0.0.1:0\n  owner_listen: 127.0.0.1:0\n", 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	info, stop := startDemo(t, cfg)
	defer stop()
	if info.OwnerConsoleURL == "" || info.OwnerConsoleURL == strings.TrimSuffix(info.PortalURL, "/") {
		t.Fatalf("owner console %q beside portal %q", info.OwnerConsoleURL, info.PortalURL)
	}
	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(info.RootCAFile)
	if err != nil || !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("root CA: %v", err)
	}
	// asked dials u and reports whether the server asked for a client
	// certificate, and which issuers it named.
	asked := func(u string) (bool, [][]byte) {
		t.Helper()
		host := strings.TrimPrefix(strings.TrimSuffix(u, "/"), "https://")
		var req *tls.CertificateRequestInfo
		conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: roots, ServerName: "localhost",
			GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				req = cri
				return &tls.Certificate{}, nil
			}})
		if err != nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		defer conn.Close()
		// TLS 1.3: the request arrives with the server's flight, which the
		// client has read once the handshake is complete.
		if err := conn.Handshake(); err != nil {
			t.Fatal(err)
		}
		if req == nil {
			return false, nil
		}
		return true, req.AcceptableCAs
	}
	if got, _ := asked(info.PortalURL); got {
		t.Fatal("the staff portal's listener asks for a client certificate (a picker on every staff computer)")
	}
	got, cas := asked(info.OwnerConsoleURL)
	if !got || len(cas) == 0 {
		t.Fatalf("the owner console does not ask for the owner's certificate (asked %v, issuers %d)", got, len(cas))
	}
	keys, err := ca.LoadKeys(filepath.Join(filepath.Dir(cfg), "data", "ca"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range keys.DeviceCAs {
		if !slices.ContainsFunc(cas, func(b []byte) bool { return bytes.Equal(b, d.Cert.RawSubject) }) {
			t.Fatalf("the owner console does not name device intermediate %s", d.Cert.Subject)
		}
	}
}

// TestVerifyCallbackKeyFileEnablesCallback: portal.verify_callback_key_file
// is read at start: the identity provider's endpoint then exists (an
// unsigned or wrongly signed result is 401), and a result signed with the
// file's key passes the signature check (a stale one is then 400).
func TestVerifyCallbackKeyFileEnablesCallback(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	const keyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	if err := os.WriteFile(filepath.Join(dir, "callback.key"), []byte(keyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg)
	conf := strings.Replace(string(data), "portal:\n  listen: 127.0.0.1:0\n", "portal:\n  listen: 127.0.0.1:0\n  verify_callback_key_file: callback.key\n", 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	info, stop := startDemo(t, cfg)
	defer stop()
	roots := x509.NewCertPool()
	rootPEM, _ := os.ReadFile(info.RootCAFile)
	roots.AppendCertsFromPEM(rootPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	body := []byte(`{"tenant_id":"t","sub_id":"s","decision":"verified","nonce":"0123456789abcdef0123","issued_at":"2020-01-01T00:00:00Z"}`)
	sign := func(key []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	key, _ := hex.DecodeString(keyHex)
	for _, tc := range []struct {
		name, signature string
		want            int
	}{
		{"unsigned", "", http.StatusUnauthorized},
		{"another key", sign(make([]byte, 32)), http.StatusUnauthorized},
		{"the file's key, stale result", sign(key), http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(info.PortalURL, "/")+"/verify/callback", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tc.signature != "" {
			req.Header.Set("X-Devicegate-Signature", tc.signature)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
