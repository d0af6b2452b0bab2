package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Proxy certificates from the CLI: a scope must be asked for (store
// names or "all"), `admin proxy list` shows them, `admin proxy revoke`
// takes a name or a serial and puts the serials on the CRL.
func TestAdminProxyCertificates(t *testing.T) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "other")

	for _, args := range [][]string{
		{"--name", "edge-x", "--out", filepath.Join(dir, "x")},                        // no scope: refused
		{"--name", "edge-x", "--stores", "", "--out", filepath.Join(dir, "x")},        // empty scope
		{"--name", "edge-x", "--stores", "nostore", "--out", filepath.Join(dir, "x")}, // unknown store
		{"--name", "bad name", "--stores", "shop", "--out", filepath.Join(dir, "x")},
	} {
		t.Run("refused "+strings.Join(args, " "), func(t *testing.T) {
			if code, _, errOut := cli(t, append([]string{"ca", "--config", cfg, "proxy-cert"}, args...)...); code == 0 || errOut == "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
				t.Fatal("a refused proxy-cert wrote credentials")
			}
		})
	}
	mustCLI(t, "ca", "--config", cfg, "proxy-cert", "--name", "edge-1", "--stores", "shop", "--out", filepath.Join(dir, "e1"))
	mustCLI(t, "ca", "--config", cfg, "proxy-cert", "--name", "edge-2", "--stores", "all", "--out", filepath.Join(dir, "e2"))

	list := func() map[string]proxyJSON {
		var views []proxyJSON
		if err := json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "proxy", "list", "--json")), &views); err != nil {
			t.Fatal(err)
		}
		out := map[string]proxyJSON{}
		for _, v := range views {
			out[v.Name] = v
		}
		return out
	}
	got := list()
	if e1 := got["edge-1"]; e1.Status != "active" || strings.Join(e1.Stores, ",") != "shop" || e1.NotAfter.Sub(e1.IssuedAt) > 7*24*time.Hour {
		t.Fatalf("edge-1: %+v", e1)
	}
	if e2 := got["edge-2"]; e2.Status != "active" || strings.Join(e2.Stores, ",") != "all" {
		t.Fatalf("edge-2: %+v", e2)
	}
	if out := mustCLI(t, "admin", "--config", cfg, "proxy", "list"); !strings.Contains(out, "edge-1") || !strings.Contains(out, "shop") {
		t.Fatalf("proxy list: %q", out)
	}

	if code, _, _ := cli(t, "admin", "--config", cfg, "proxy", "revoke", "no-such-proxy"); code == 0 {
		t.Fatal("revoking an unknown proxy succeeded")
	}
	mustCLI(t, "admin", "--config", cfg, "proxy", "revoke", "edge-1", "--reason", "keyCompromise")
	mustCLI(t, "admin", "--config", cfg, "proxy", "revoke", got["edge-2"].Serial)
	got = list()
	if got["edge-1"].Status != "revoked" || got["edge-1"].Reason != "keyCompromise" || got["edge-2"].Status != "revoked" {
		t.Fatalf("after revoke: %+v", got)
	}
	block, _ := pem.Decode([]byte(mustCLI(t, "ca", "--config", cfg, "crl")))
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	onCRL := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		onCRL[e.SerialNumber.Text(16)] = true
	}
	if !onCRL[got["edge-1"].Serial] || !onCRL[got["edge-2"].Serial] {
		t.Fatalf("revoked proxy serials not on the CRL: %v", onCRL)
	}
}
