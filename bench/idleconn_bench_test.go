package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/proxy"
)

// BenchmarkIdleConnMemory opens idle mTLS connections (each with one
// request done, then kept alive) to the gateway's TLS server and reports
// the memory (heap + goroutine stacks) each one holds on the server side.
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 500
	pki := testpki.New(b)
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	uln, _ := net.Listen("tcp", "127.0.0.1:0")
	go upstream.Serve(uln)
	defer upstream.Close()

	catalog, _ := config.DefaultCatalog()
	gw, err := proxy.NewGateway(proxy.Options{
		TrustDomain: "bench.local", Catalog: catalog, Policy: proxy.NewPolicy(nil, catalog, slog.New(slog.DiscardHandler)),
		MaxStaleness: time.Minute, Log: slog.New(slog.DiscardHandler),
		Upstreams: []config.Upstream{{Name: "u", URL: "http://" + uln.Addr().String(), Hosts: []string{"127.0.0.1"},
			Binding: config.Binding{Mode: "whoami", WhoamiURL: "http://" + uln.Addr().String() + "/", SessionCookie: "s"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{pki.ServerCert(b, "127.0.0.1")}}
	devicePool := x509.NewCertPool()
	devicePool.AddCert(pki.Intermediate)
	proxy.ConfigureTLS(tc, devicePool, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	// As the product serves it: the fast path, net/http for the rest.
	srv := proxy.NewServer(gw, &http.Server{TLSConfig: tc, IdleTimeout: time.Minute})
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	// The clients run in a child process (this test binary again), so only
	// the server side of the connections is counted here.
	leaf, key := pki.Leaf(b, testpki.LeafOptions{})
	dir := b.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"), filepath.Join(dir, "ca.pem")
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(certFile, testpki.PEM(leaf, pki.Intermediate), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(caFile, testpki.PEM(pki.Root), 0o600)
	for n := 0; n < b.N; n++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClients$")
		cmd.Env = append(os.Environ(), "IDLE_CLIENTS_ADDR="+ln.Addr().String(), "IDLE_CLIENTS_N="+strconv.Itoa(conns),
			"IDLE_CLIENTS_CERT="+certFile, "IDLE_CLIENTS_KEY="+keyFile, "IDLE_CLIENTS_CA="+caFile)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n') // "ready" once all are open
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			b.Fatalf("clients: %q %v", line, err)
		}
		time.Sleep(200 * time.Millisecond)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		cmd.Process.Kill()
		cmd.Wait()
		used := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
		b.ReportMetric(float64(used)/conns/1024, "KiB/idle-conn")
	}
}

// TestIdleClients is the child process of BenchmarkIdleConnMemory: it opens
// idle keep-alive mTLS connections, says "ready" and waits to be killed.
func TestIdleClients(t *testing.T) {
	addr := os.Getenv("IDLE_CLIENTS_ADDR")
	if addr == "" {
		t.Skip("child process of BenchmarkIdleConnMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("IDLE_CLIENTS_N"))
	cert, err := tls.LoadX509KeyPair(os.Getenv("IDLE_CLIENTS_CERT"), os.Getenv("IDLE_CLIENTS_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(os.Getenv("IDLE_CLIENTS_CA"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	var keep []*http.Transport
	for i := 0; i < n; i++ {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		keep = append(keep, tr)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	runtime.KeepAlive(keep)
}
