package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"
)

// The test against an outside ACME CA (Let's Encrypt's Pebble) is in
// e2e/acme, a module of its own, so that Pebble stays out of this module.

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
