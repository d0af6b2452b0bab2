// Package bench holds devicegate's benchmarks. Figures and how to read them
// are in bench/README.md.
package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/x509util"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/bench/revokedrows"
	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
	"github.com/devicegate/devicegate/store/sqlstore"
	"github.com/devicegate/devicegate/store/storetest"
)

// clients is the number of concurrent enrollment clients (the issue's 8).
const clients = 8

var actor = store.Actor{Kind: "cli", Name: "bench"}

// crlRevoked is how many revoked, unexpired certificates the CA of the
// issuance benchmarks has on its CRL: a year of renewals (each revokes the
// superseded serial) and departures of a few thousand devices.
const crlRevoked = 10_000

// issueEnv is a CA over SQLite with enough protected sub-accounts and
// tickets for n issuances, running as `devicegate serve` runs it: Run
// keeps its CRL (crlRevoked entries, also written to a file) fresh.
type issueEnv struct {
	ca    *ca.Authority
	keys  *ca.Keys
	st    store.Store
	codes []string
	subs  []store.SubAccount
	csrs  [][]byte
	// dbCPU, if set, is the CPU time used so far by a database server
	// running in processes of its own (PostgreSQL).
	dbCPU func() (time.Duration, error)
	// connPerEnroll: each enrollment over HTTPS opens a new connection
	// (full TLS handshake, no session to resume), as `devicegate enroll`
	// on a new device does; else the clients keep theirs alive.
	connPerEnroll bool
}

func newIssueEnv(b *testing.B, n int) *issueEnv {
	b.Helper()
	return newIssueEnvOn(b, sqlitetest.Open(b), n)
}

// newIssueEnvOn is newIssueEnv over the store st (SQLite or PostgreSQL).
func newIssueEnvOn(b *testing.B, st *sqlstore.DB, n int) *issueEnv {
	b.Helper()
	ctx := context.Background()
	t := storetest.Tenant(b, st, "bench")
	gone := storetest.Protected(b, st, t, "departed", 1)
	if err := revokedrows.InsertOnCRL(ctx, st.SQL(), st.Rebind, t.ID, gone.ID, crlRevoked); err != nil {
		b.Fatal(err)
	}
	a, keys := newCA(b, st)
	run, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { a.Run(run); close(stopped) }()
	b.Cleanup(func() { stop(); <-stopped })
	e := &issueEnv{ca: a, keys: keys, st: st}
	for i := 0; len(e.codes) < n; i++ {
		s := storetest.Protected(b, st, t, fmt.Sprintf("staff%05d", i), store.MaxDevicesLimit)
		e.subs = append(e.subs, s)
		for j := 0; j < store.MaxDevicesLimit && len(e.codes) < n; j++ {
			code, _, err := a.CreateTicket(ctx, t.ID, s.ID, actor)
			if err != nil {
				b.Fatal(err)
			}
			e.codes = append(e.codes, code)
		}
	}
	// One key pair per issuance (one key holds one device), made before
	// the timed part; at least one per client for BareSign.
	for i := 0; i < max(n, clients); i++ {
		e.csrs = append(e.csrs, newCSR(b))
	}
	return e
}

// newCA initializes a fresh CA over st that writes its CRL to a file.
func newCA(b *testing.B, st store.Store) (*ca.Authority, *ca.Keys) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "ca")
	if err := ca.Init(dir, ca.InitOptions{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	keys, err := ca.LoadKeys(dir)
	if err != nil {
		b.Fatal(err)
	}
	a, err := ca.New(context.Background(), keys, st, ca.Options{TrustDomain: "bench.local", CRLFile: filepath.Join(dir, "crl.pem")})
	if err != nil {
		b.Fatal(err)
	}
	return a, keys
}

func newCSR(b testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// runParallel runs n calls of fn spread over `clients` goroutines.
func runParallel(b *testing.B, n int, fn func(worker, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(w, i); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkBareSign is smallstep's authority.SignWithContext alone with a
// template (the ceiling for issuance), 8 goroutines.
func BenchmarkBareSign(b *testing.B) {
	sign := newIssueEnv(b, 1).bareSigner(b)
	b.ResetTimer()
	runParallel(b, b.N, func(w, _ int) error { return sign(w) })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// bareSigner returns what BareSign measures: one signature by worker w
// (0 <= w < clients) with smallstep's authority and a template.
func (e *issueEnv) bareSigner(b *testing.B) func(w int) error {
	auth, err := authority.NewEmbedded(
		authority.WithX509RootCerts(e.keys.Root),
		authority.WithX509SignerChain([]*x509.Certificate{e.keys.Device}, e.keys.DeviceKey),
		authority.WithQuietInit(),
	)
	if err != nil {
		b.Fatal(err)
	}
	csrs := make([]*x509.CertificateRequest, clients)
	for i, p := range e.csrs[:clients] {
		block, _ := pem.Decode(p)
		if csrs[i], err = x509.ParseCertificateRequest(block.Bytes); err != nil {
			b.Fatal(err)
		}
	}
	return func(w int) error {
		// Template data is mutated while signing: one per call.
		data := x509util.CreateTemplateData("bench:staff", []string{"spiffe://bench.local/store/a/sub/b/device/c"})
		opts, err := provisioner.TemplateOptions(nil, data)
		if err != nil {
			return err
		}
		_, err = auth.SignWithContext(context.Background(), csrs[w], provisioner.SignOptions{NotAfter: provisioner.NewTimeDuration(time.Now().Add(time.Hour))}, opts)
		return err
	}
}

// BenchmarkIssueInProcess is ca.Issue (CSR checks, ticket, pre-check,
// sign, quota transaction) without HTTP, 8 goroutines.
func BenchmarkIssueInProcess(b *testing.B) {
	e := newIssueEnv(b, b.N)
	ctx := context.Background()
	b.ResetTimer()
	runParallel(b, b.N, func(w, i int) error {
		_, err := e.ca.Issue(ctx, ca.IssueRequest{Code: e.codes[i], CSR: e.csrs[i]})
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkIssueStoreOnly is the store's quota transaction alone.
func BenchmarkIssueStoreOnly(b *testing.B) {
	e := newIssueEnv(b, b.N)
	ctx := context.Background()
	now := time.Now()
	b.ResetTimer()
	runParallel(b, b.N, func(_, i int) error {
		s := e.subs[i/store.MaxDevicesLimit]
		_, _, err := e.st.IssueDevice(ctx, store.IssueRequest{
			TenantID: s.TenantID, SubID: s.ID, DeviceID: store.NewID(), Serial: fmt.Sprintf("%x", i+1<<40),
			Fingerprint: "00", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Now: now,
		}, actor)
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkIssueHTTPS is POST /v1/enroll end to end over TLS (keep-alive)
// from 8 concurrent clients on loopback.
func BenchmarkIssueHTTPS(b *testing.B) {
	enroll := newIssueEnv(b, b.N).enrollOverHTTPS(b)
	b.ResetTimer()
	runParallel(b, b.N, func(_, i int) error { return enroll(i) })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// enrollOverHTTPS serves the CA's API on loopback and returns what
// IssueHTTPS measures: POST /v1/enroll with code and CSR i, checked.
func (e *issueEnv) enrollOverHTTPS(b *testing.B) func(i int) error {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	tc, err := ca.ServerTLS(ctx, e.keys, filepath.Join(b.TempDir(), "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	caAPI := ca.NewServer(e.ca)
	caAPI.ConfigureTLS(tc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: caAPI, TLSConfig: tc}
	go srv.Serve(tls.NewListener(ln, tc))
	b.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + api.EnrollPath
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: e.keys.RootPool()},
		MaxIdleConnsPerHost: clients,
		DisableKeepAlives:   e.connPerEnroll,
	}}
	bodies := make([][]byte, len(e.codes))
	for i := range bodies {
		bodies[i], _ = json.Marshal(api.EnrollRequest{Code: e.codes[i], CSR: string(e.csrs[i])})
	}
	return func(i int) error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i]))
		if err != nil {
			return err
		}
		var out api.Certificate
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || out.Serial == "" {
			return fmt.Errorf("enroll %d: status %d, %v", i, resp.StatusCode, err)
		}
		return nil
	}
}
