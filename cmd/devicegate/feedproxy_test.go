package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/smallstep/certificates/acme"
)

// freePort picks a loopback port for a listener started by a subcommand.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A second proxy on "another node": no database, no CA keys, only the
// credentials from `ca proxy-cert` and its own server certificate, from
// the operator's files or from the CA's internal ACME service. It lets an
// enrolled device through, refuses it within a second of a revocation made
// with the admin CLI, and its decisions reach the store through the CA.
func TestProxyFedByTheCA(t *testing.T) {
	t.Run("certificate files", func(t *testing.T) { testProxyFedByTheCA(t, false) })
	t.Run("internal ACME", func(t *testing.T) { testProxyFedByTheCA(t, true) })
}

func testProxyFedByTheCA(t *testing.T, viaACME bool) {
	cfg := writeConfig(t)
	dir := filepath.Dir(cfg)
	if viaACME {
		conf, _ := os.ReadFile(cfg)
		conf = bytes.Replace(conf, []byte("ca:\n"), []byte("ca:\n  acme: {hosts: [localhost, 127.0.0.1]}\n"), 1)
		os.WriteFile(cfg, conf, 0o600)
	}
	info, _ := startDemo(t, cfg)
	creds := filepath.Join(dir, "edge-creds")
	demoStore, _, _ := strings.Cut(info.BackofficeUsers[0].Name, ":")
	mustCLI(t, "ca", "--config", cfg, "proxy-cert", "--name", "edge-1", "--stores", demoStore, "--out", creds)

	listen := freePort(t)
	edgeDir := t.TempDir()
	var tlsConf, edgeRoot string
	if viaACME {
		// The CA validates TLS-ALPN-01 on the edge's listener, not on 443.
		port, _ := strconv.Atoi(strings.Split(listen, ":")[1])
		acme.InsecurePortTLSALPN01 = port
		t.Cleanup(func() { acme.InsecurePortTLSALPN01 = 0 })
		tlsConf = fmt.Sprintf("{hosts: [localhost, 127.0.0.1], acme: {directory_url: %q, agree_tos: true, ca_root_file: %q, tls_alpn_port: %d}}",
			info.CAURL+"/acme/devicegate/directory", info.RootCAFile, port)
		edgeRoot = info.RootCAFile
	} else {
		// The edge proxy's own server certificate (the operator's PKI).
		pki := testpki.New(t)
		server := pki.ServerCert(t, "localhost", "127.0.0.1")
		var chain []byte
		for _, der := range server.Certificate {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(server.PrivateKey.(crypto.Signer))
		os.WriteFile(filepath.Join(edgeDir, "server.crt"), chain, 0o600)
		os.WriteFile(filepath.Join(edgeDir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
		edgeRoot = filepath.Join(edgeDir, "root.pem")
		os.WriteFile(edgeRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.Root.Raw}), 0o644)
		tlsConf = "{cert_file: server.crt, key_file: server.key}"
	}

	edgeCfg := filepath.Join(edgeDir, "edge.yaml")
	// A minute between the edge's own polls: only the feed's watch (a
	// long poll the CA wakes up) brings it the enrollment and the
	// revocation within the bounds below.
	conf := fmt.Sprintf(`data_dir: data
tls: %s
proxy:
  listen: %s
  sync_interval: 1m
  admin_listen: 127.0.0.1:0
  enroll_url: https://localhost:8444/
  feed: {ca_url: %q, credentials_dir: %q}
  upstreams:
    - name: backoffice
      url: %q
      hosts: [localhost, 127.0.0.1]
      binding: {mode: whoami, whoami_url: %q, session_cookie: bo_session}
      permissions:
        - {path: /orders/sold, point: orders.sold}
`, tlsConf, listen, info.CAURL, creds, info.BackofficeURL, info.BackofficeURL+"/whoami")
	if err := os.WriteFile(edgeCfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "check-config", edgeCfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() { done <- run(ctx, []string{"proxy", "--config", edgeCfg}, strings.NewReader(""), &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("edge proxy did not stop")
		}
	})
	edge := info
	edge.ProxyURL, edge.RootCAFile = "https://localhost:"+strings.Split(listen, ":")[1], edgeRoot
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge proxy did not start: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if viaACME {
		waitForServerCertificate(t, listen, edgeRoot)
	}

	alice := info.BackofficeUsers[0]
	pw := filepath.Join(dir, "p12pw")
	os.WriteFile(pw, []byte("correct-horse-battery\n"), 0o600)
	code := strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", alice.Name))
	pc := filepath.Join(dir, "alice-edge-pc")
	mustCLI(t, "enroll", "--url", info.CAURL, "--code", code, "--out", pc, "--root", info.RootCAFile, "--p12-password-file", pw)
	deadline = time.Now().Add(5 * time.Second)
	for proxyStatus(t, edge, pc, alice.Name, alice.Password) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the edge proxy does not let the enrolled device through: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var listing struct {
		Devices []struct{ ID, Status string } `json:"devices"`
	}
	json.Unmarshal([]byte(mustCLI(t, "admin", "--config", cfg, "sub", "devices", alice.Name, "--json")), &listing)
	for _, d := range listing.Devices {
		if d.Status == "active" {
			mustCLI(t, "admin", "--config", cfg, "device", "revoke", d.ID)
		}
	}
	revoked := time.Now() // in the store: now the CA notices and wakes the watch
	for proxyStatus(t, edge, pc, alice.Name, alice.Password) != http.StatusForbidden {
		if time.Since(revoked) > time.Second {
			t.Fatal("the edge proxy still lets a revoked device through after 1 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a CLI revocation reached the CA-fed proxy after %v", time.Since(revoked).Round(time.Millisecond))
	// Its decisions are in the store's audit log (via POST /v1/audit).
	waitForProxyDecisions(t, cfg, alice.Name)
}

// waitForServerCertificate waits until addr serves a certificate for
// localhost that rootFile's CA signed (ACME issuance runs after start-up).
func waitForServerCertificate(t *testing.T, addr, rootFile string) {
	t.Helper()
	pemRoot, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemRoot)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: roots})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server certificate on %s after 30 s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
