package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/proxy"
)

// TestRotateEdgeDevicesPEM: an edge proxy's devices.pem (`ca intermediate
// bundle`) is read with every certificate, and a file that is missing,
// empty, half-written, or holds a device certificate instead of a CA is
// refused; the reload loop keeps the current set when a read fails and
// takes the new one when it succeeds.
func TestRotateEdgeDevicesPEM(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if err := ca.Init(caDir, ca.InitOptions{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.NewIntermediate(caDir, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	keys, err := ca.LoadKeys(caDir)
	if err != nil {
		t.Fatal(err)
	}
	bundle := keys.TrustedPEM
	if strings.Count(string(bundle), "BEGIN CERTIFICATE") != 2 {
		t.Fatal("the bundle should hold both intermediates")
	}
	cut := bytes.LastIndex(bundle, []byte("-----END"))
	path := filepath.Join(dir, "devices.pem")
	write := func(data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := fileDeviceCAs(path)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no PEM certificate"},
		{"half-written", bundle[:cut], "half-written"},
		{"the root besides the intermediates", append(append([]byte{}, bundle...), keys.RootPEM...), "is a root"},
		{"a device certificate", devicePEM(t, caDir), "not a device intermediate"},
		{"the bundle", bundle, ""},
		{"garbage", []byte("not pem"), "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.data)
			_, _, err := load()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}

	// The reload loop: a broken file keeps the set, a good one replaces it.
	cas := proxy.NewDeviceCAs([]*x509.Certificate{keys.Device}, nil)
	first := cas.Pool()
	write(bundle[:cut])
	reads := make(chan struct{}, 100)
	counted := func() ([]*x509.Certificate, []*x509.Certificate, error) {
		defer func() { reads <- struct{}{} }()
		return load()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reloadDeviceCAs(ctx, cas, counted, 5*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	for range 3 { // three reloads of the broken file
		<-reads
	}
	if cas.Pool() != first {
		t.Fatal("a half-written devices.pem replaced the trusted set")
	}
	write(bundle)
	deadline := time.Now().Add(5 * time.Second)
	for cas.Pool() == first {
		if time.Now().After(deadline) {
			t.Fatal("the complete devices.pem was not taken")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	go func() {
		for range reads {
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// devicePEM is a device certificate (a leaf) of the CA in caDir, PEM.
func devicePEM(t *testing.T, caDir string) []byte {
	t.Helper()
	keys, err := ca.LoadKeys(caDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, keys.Device, &key.PublicKey, keys.DeviceKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
