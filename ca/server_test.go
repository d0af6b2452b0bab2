package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// startServer runs the CA API over TLS from ServerTLS (certmagic with the
// internal server CA) on loopback.
func startServer(t *testing.T, f *fixture) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tc, err := ServerTLS(ctx, f.ca.Keys(), filepath.Join(f.dir, "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srvAPI := NewServer(f.ca)
	srvAPI.ConfigureTLS(tc)
	f.api = srvAPI
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: srvAPI, TLSConfig: tc}
	go srv.Serve(tls.NewListener(ln, tc))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// waitParked waits until n feed requests wait in a long poll of the
// fixture's server, so that a change made next must wake them up (rather
// than being there already when they arrive).
func waitParked(t *testing.T, f *fixture, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); f.api.parked.Load() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d long polls parked after 10 s, want %d", f.api.parked.Load(), n)
		}
	}
}

// httpClient talks to the fixture's CA as devicegate's programs do: every
// request states the API version (unless it already states one).
func httpClient(f *fixture, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: f.ca.Keys().RootPool()}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: versioned{&http.Transport{TLSClientConfig: tc}}, Timeout: 20 * time.Second}
}

// versioned states api.Version on requests that state none.
type versioned struct{ http.RoundTripper }

func (v versioned) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := r.Header[api.VersionHeader]; !ok {
		r = r.Clone(r.Context())
		api.SetHeader(r.Header)
	}
	return v.RoundTripper.RoundTrip(r)
}

func tlsCert(chain []*x509.Certificate, key crypto.Signer) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func postEnroll(t *testing.T, c *http.Client, url string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := c.Post(url+"/v1/enroll", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestEnrollOverHTTPS(t *testing.T) {
	f := newFixture(t)
	f.alice = f.protectedSub("limited", 1)
	url := startServer(t, f)
	c := httpClient(f, nil)

	status, out := postEnroll(t, c, url, map[string]string{"code": f.ticket(f.alice), "csr": string(newCSR(t, newKey(t), nil)), "label": "front desk"})
	if status != http.StatusCreated {
		t.Fatalf("enroll: %d %v", status, out)
	}
	if out["subaccount"] != "shop:limited" || out["installed"].(float64) != 1 || out["limit"].(float64) != 1 || !strings.Contains(out["chain"].(string), "BEGIN CERTIFICATE") {
		t.Fatalf("enroll response: %v", out)
	}

	status, out = postEnroll(t, c, url, map[string]string{"code": f.ticket(f.alice), "csr": string(newCSR(t, newKey(t), nil))})
	e, _ := out["error"].(map[string]any)
	if status != http.StatusForbidden || e["code"] != "quota_exceeded" || e["message"] != QuotaMessageEN || e["message_zh"] != QuotaMessageZH {
		t.Fatalf("over quota: %d %v", status, out)
	}

	for name, body := range map[string]any{
		"unknown field": map[string]string{"code": "x", "csr": "y", "subaccount": "shop:root"},
		"not JSON":      "nope",
		"huge body":     map[string]string{"code": f.ticket(f.alice), "csr": strings.Repeat("A", 2*maxEnrollBody)},
	} {
		status, out := postEnroll(t, c, url, body)
		if status < 400 || status >= 500 {
			t.Errorf("%s: %d %v, want a 4xx", name, status, out)
		}
	}

	resp, err := c.Get(url + "/v1/roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	roots, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(roots, f.ca.Keys().RootPEM) {
		t.Fatal("roots.pem is not the root")
	}
}

// Guessing enrollment codes locks the client's address out: after the
// limit even a valid code waits (429), and the legitimate case before it
// passes.
func TestEnrollCodeGuessingLocksOut(t *testing.T) {
	f := newFixture(t)
	f.alice = f.protectedSub("guessed", 2)
	url := startServer(t, f)
	c := httpClient(f, nil)
	if st, out := postEnroll(t, c, url, map[string]string{"code": f.ticket(f.alice), "csr": string(newCSR(t, newKey(t), nil))}); st != http.StatusCreated {
		t.Fatalf("valid code: %d %v", st, out)
	}
	for i := range maxCodeFailures {
		st, _ := postEnroll(t, c, url, map[string]string{"code": "DG-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", "csr": string(newCSR(t, newKey(t), nil))})
		if st != http.StatusForbidden {
			t.Fatalf("guess %d: %d, want 403", i, st)
		}
	}
	st, out := postEnroll(t, c, url, map[string]string{"code": f.ticket(f.alice), "csr": string(newCSR(t, newKey(t), nil))})
	if e, _ := out["error"].(map[string]any); st != http.StatusTooManyRequests || e["code"] != "too_many_attempts" {
		t.Fatalf("after %d bad codes: %d %v, want 429", maxCodeFailures, st, out)
	}
	if n, _ := f.store.CountActiveDevices(f.ctx, f.tenant.ID, f.alice.ID, f.now); n != 1 {
		t.Fatalf("%d devices, want 1 (the locked-out request issued nothing)", n)
	}
}

func getFeed(t *testing.T, c *http.Client, url string) (int, api.RevocationPage) {
	t.Helper()
	status, p, err := fetchFeed(c, url)
	if err != nil {
		t.Fatal(err)
	}
	return status, p
}

// fetchFeed is getFeed for another goroutine than the test's.
func fetchFeed(c *http.Client, url string) (int, api.RevocationPage, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, api.RevocationPage{}, err
	}
	defer resp.Body.Close()
	var p api.RevocationPage
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&p)
	}
	return resp.StatusCode, p, err
}

func TestRevocationFeed(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	device := f.issue(f.alice)
	proxyKey := newKey(t)
	proxyChain, err := f.ca.IssueProxyCert(f.ctx, "edge-1", store.ProxyScope{All: true}, newCSR(t, proxyKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	deviceKey := newKey(t)
	deviceIssued, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, deviceKey, nil)})
	if err != nil {
		t.Fatal(err)
	}

	// Refused: no client certificate, and a device certificate.
	for name, c := range map[string]*http.Client{
		"no certificate":     httpClient(f, nil),
		"device certificate": httpClient(f, tlsCert(deviceIssued.Chain, deviceKey)),
	} {
		if status, _ := getFeed(t, c, url+"/v1/revocations?since=0&wait=0s"); status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, status)
		}
	}

	proxy := httpClient(f, tlsCert(proxyChain, proxyKey))
	status, page := getFeed(t, proxy, url+"/v1/revocations?since=0&wait=0s")
	if status != http.StatusOK || len(page.Revocations) != 0 || page.Seq == 0 {
		t.Fatalf("initial page: %d %+v", status, page)
	}

	// A waiting long poll returns as soon as the device is revoked.
	done := make(chan api.RevocationPage, 1)
	go func() {
		_, p, err := fetchFeed(proxy, url+"/v1/revocations?since="+itoa(page.Seq)+"&wait=20s")
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	waitParked(t, f, 1)
	start := time.Now()
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, device.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-done:
		if len(p.Revocations) != 1 || p.Revocations[0].Serial != device.Device.Serial || p.Seq <= page.Seq {
			t.Fatalf("long poll page: %+v", p)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Fatalf("long poll took %v", waited)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not return after a revocation")
	}

	for _, q := range []string{"since=-1", "since=abc", "since=0&wait=1h", ""} {
		if status, _ := getFeed(t, proxy, url+"/v1/revocations?"+q); status != http.StatusBadRequest {
			t.Errorf("query %q: status %d, want 400", q, status)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestRenewOverMTLS(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	key := newKey(t)
	is, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, key, nil)})
	if err != nil {
		t.Fatal(err)
	}
	post := func(c *http.Client) (int, map[string]any) {
		b, _ := json.Marshal(map[string]string{"csr": string(newCSR(t, newKey(t), nil))})
		resp, err := c.Post(url+"/v1/renew", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, _ := post(httpClient(f, nil)); status != http.StatusUnauthorized {
		t.Fatalf("renew without a certificate: %d", status)
	}
	f.now = f.now.Add(f.ca.opts.Validity - 24*time.Hour) // a day before its end: renewable
	status, out := post(httpClient(f, tlsCert(is.Chain, key)))
	if status != http.StatusCreated || out["device_id"] != is.Device.ID || out["serial"] == is.Device.Serial {
		t.Fatalf("renew: %d %v", status, out)
	}
	// The superseded certificate is refused from now on.
	if status, out := post(httpClient(f, tlsCert(is.Chain, key))); status < 400 || status >= 500 {
		t.Fatalf("renew with the superseded certificate: %d %v", status, out)
	}
}
