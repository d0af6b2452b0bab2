package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
)

// servedNode is a `devicegate serve` running in this test process: its
// printed URLs, and its log lines as they come.
type servedNode struct {
	urls map[string]string
	logs chan string
}

// startServeInProcess runs `devicegate serve --config cfg` until the test
// ends.
func startServeInProcess(t *testing.T, cfg string, keys ...string) *servedNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg}, strings.NewReader(""), outW, errW)
		outW.Close()
		errW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	n := &servedNode{urls: map[string]string{}, logs: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			select {
			case n.logs <- sc.Text():
			default:
			}
		}
	}()
	sc := bufio.NewScanner(outR)
	for slices.ContainsFunc(keys, func(k string) bool { return n.urls[k] == "" }) {
		if !sc.Scan() {
			t.Fatalf("serve exited before printing %v", keys)
		}
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			n.urls[k] = v
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	return n
}

// TestServeFollowsRotation: a running `devicegate serve` (CA API, portal
// and owner console, SQLite) follows `ca intermediate new`, `activate` and
// `retire` made with the CLI beside it, without a restart: the owner
// console's handshake names the new intermediate once it is trusted and
// the retired one no more, and enrollments through the API come from the
// new intermediate once it is active.
func TestServeFollowsRotation(t *testing.T) {
	deviceCAReloadEvery = 50 * time.Millisecond
	t.Cleanup(func() { deviceCAReloadEvery = 10 * time.Second })
	dir := t.TempDir()
	cfg := filepath.Join(dir, "devicegate.yaml")
	conf := "data_dir: data\nca: {listen: 127.0.0.1:0}\nportal: {listen: 127.0.0.1:0, owner_listen: 127.0.0.1:0}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "ca", "--config", cfg, "init")
	mustCLI(t, "admin", "--config", cfg, "store", "add", "shop")
	mustCLI(t, "admin", "--config", cfg, "sub", "add", "shop:kim", "--role", "finance")
	mustCLI(t, "admin", "--config", cfg, "sub", "phone", "shop:kim")
	mustCLI(t, "admin", "--config", cfg, "sub", "protect", "shop:kim", "--devices", "3")
	node := startServeInProcess(t, cfg, "ca_url", "owner_console_url")
	caDir := filepath.Join(dir, "data", "ca")
	keys, err := ca.LoadKeys(caDir)
	if err != nil {
		t.Fatal(err)
	}
	oldCA := keys.Device
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: keys.RootPool()}}}

	enroll := func(t *testing.T) *x509.Certificate {
		t.Helper()
		at := newAttempt(t, strings.TrimSpace(mustCLI(t, "admin", "--config", cfg, "sub", "ticket", "shop:kim")))
		postEnroll(client, node.urls["ca_url"], at)
		if at.status != http.StatusCreated || at.leaf == nil {
			t.Fatalf("enroll: %d %s %v", at.status, at.errKey, at.netErr)
		}
		return at.leaf
	}
	// named is the issuers the owner console's handshake asks for.
	named := func(t *testing.T) [][]byte {
		t.Helper()
		var req *tls.CertificateRequestInfo
		host := strings.TrimPrefix(strings.TrimSuffix(node.urls["owner_console_url"], "/"), "https://")
		conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: keys.RootPool(), ServerName: "localhost",
			GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				req = cri
				return &tls.Certificate{}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if req == nil {
			t.Fatal("the owner console asks for no certificate")
		}
		return req.AcceptableCAs
	}
	awaitNamed := func(t *testing.T, want []*x509.Certificate) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			got := named(t)
			same := len(got) == len(want)
			for _, c := range want {
				same = same && slices.ContainsFunc(got, func(b []byte) bool { return bytes.Equal(b, c.RawSubject) })
			}
			if same {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the owner console names %d issuers 10 s later, want %d", len(got), len(want))
			}
		}
	}
	awaitLog := func(t *testing.T, want ...string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case line := <-node.logs:
				ok := true
				for _, w := range want {
					ok = ok && strings.Contains(line, w)
				}
				if ok {
					return
				}
			case <-timeout:
				t.Fatalf("serve logged no line with %q within 10 s", want)
			}
		}
	}

	if leaf := enroll(t); leaf.CheckSignatureFrom(oldCA) != nil {
		t.Fatal("before the rotation a device is not issued by the original intermediate")
	}
	awaitNamed(t, []*x509.Certificate{oldCA})

	mustCLI(t, "ca", "--config", cfg, "intermediate", "new")
	rotated, err := ca.LoadKeys(caDir)
	if err != nil {
		t.Fatal(err)
	}
	newCA := rotated.DeviceCAs[1].Cert
	awaitNamed(t, []*x509.Certificate{oldCA, newCA})
	if leaf := enroll(t); leaf.CheckSignatureFrom(oldCA) != nil {
		t.Fatal("a trusted, not yet active intermediate issued a device")
	}

	mustCLI(t, "ca", "--config", cfg, "intermediate", "activate", "devices-2")
	awaitLog(t, "device intermediates reloaded", "active=devices-2")
	if leaf := enroll(t); leaf.CheckSignatureFrom(newCA) != nil {
		t.Fatal("after activate and the reload a device is not issued by the new intermediate")
	}

	mustCLI(t, "ca", "--config", cfg, "intermediate", "retire", "devices", "--force") // the first device is still on it
	awaitLog(t, "device intermediates reloaded", "retired=[devices]")
	awaitNamed(t, []*x509.Certificate{newCA})
}
