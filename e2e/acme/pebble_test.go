// Package acme tests the server certificate from an outside ACME CA:
// Let's Encrypt's test server Pebble, in-process. It lives in the e2e
// module so that Pebble and what it pulls in (a DNS server, its own
// challenge test server) stay out of the product's module graph; it needs
// nothing of the machine but loopback.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	pebbleca "github.com/letsencrypt/pebble/v2/ca"
	pebbledb "github.com/letsencrypt/pebble/v2/db"
	pebbleva "github.com/letsencrypt/pebble/v2/va"
	pebblewfe "github.com/letsencrypt/pebble/v2/wfe"
)

// Pebble really validates the TLS-ALPN-01 challenge against our listener
// (the port is the only thing it is told), and the listener then serves
// the certificate Pebble signed.
func TestServerTLSFromACME(t *testing.T) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	quiet := log.New(io.Discard, "", 0)
	db := pebbledb.NewMemoryStore()
	acmeCA := pebbleca.New(quiet, db, "", "ecdsa", 0, 1, map[string]pebbleca.Profile{"default": {Description: "default"}})
	va := pebbleva.New(quiet, 0, port, false, "", db)
	wfe := pebblewfe.New(quiet, db, va, acmeCA, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(wfe.Handler())
	defer acmeSrv.Close()
	acmeRoots := x509.NewCertPool()
	acmeRoots.AddCert(acmeSrv.Certificate())

	tc, start, err := ca.ServerTLSFromACME(ctx, ca.ACMEOptions{DirectoryURL: acmeSrv.URL + "/dir", Email: "ops@example.com",
		Hosts: []string{"127.0.0.1"}, Roots: acmeRoots, TLSALPNPort: port}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: tc, ErrorLog: quiet, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })}
	go srv.Serve(tls.NewListener(ln, tc))
	defer srv.Close()
	if err := start(ctx); err != nil {
		t.Fatal(err)
	}

	issuedBy := x509.NewCertPool()
	issuedBy.AddCert(acmeCA.GetRootCert(0).Cert)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: issuedBy}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("https://" + ln.Addr().String() + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello" {
				t.Fatalf("body %q", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from Pebble after 30 s: %v", err)
		}
		// The certificate is obtained in the background; until then the
		// listener serves none that Pebble's root verifies.
		client.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond)
	}
}
