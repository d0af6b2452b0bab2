package ca

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

	pebbleca "github.com/letsencrypt/pebble/v2/ca"
	pebbledb "github.com/letsencrypt/pebble/v2/db"
	pebbleva "github.com/letsencrypt/pebble/v2/va"
	pebblewfe "github.com/letsencrypt/pebble/v2/wfe"
)

// The server certificate comes from an ACME CA: Let's Encrypt's test
// server Pebble runs here in-process, and really validates the TLS-ALPN-01
// challenge against our listener (the port is the only thing it is told).
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

	tc, start, err := ServerTLSFromACME(ctx, ACMEOptions{DirectoryURL: acmeSrv.URL + "/dir", Email: "ops@example.com",
		Hosts: []string{"127.0.0.1"}, Roots: acmeRoots, TLSALPNPort: port}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issuedBy := x509.NewCertPool()
	issuedBy.AddCert(acmeCA.GetRootCert(0).Cert)
	helloOnceCertified(t, ctx, ln, tc, start, issuedBy)
}

// helloOnceCertified serves "hello" on ln with tc (from ServerTLSFromACME),
// starts the certificate management, waits until ln serves a certificate
// that issuedBy trusts and returns it.
func helloOnceCertified(t *testing.T, ctx context.Context, ln net.Listener, tc *tls.Config, start func(context.Context) error, issuedBy *x509.CertPool) *x509.Certificate {
	t.Helper()
	srv := &http.Server{TLSConfig: tc, ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })}
	go srv.Serve(tls.NewListener(ln, tc))
	t.Cleanup(func() { srv.Close() })
	if err := start(ctx); err != nil {
		t.Fatal(err)
	}
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
			return resp.TLS.PeerCertificates[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from the ACME CA after 30 s: %v", err)
		}
		client.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond)
	}
}
