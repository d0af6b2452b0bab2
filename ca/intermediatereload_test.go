package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/store"
)

// logSignal is a slog handler that hands every record (message and
// attributes, as text) to a channel: a test awaits what the node logs
// instead of sleeping.
type logSignal struct {
	ch    chan string
	attrs []slog.Attr
}

func (h logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h logSignal) WithGroup(string) slog.Handler            { return h }
func (h logSignal) WithAttrs(as []slog.Attr) slog.Handler {
	return logSignal{ch: h.ch, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h logSignal) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	select {
	case h.ch <- b.String():
	default: // a test not listening: dropped
	}
	return nil
}

// awaitLog returns the first record containing every one of want.
func awaitLog(t *testing.T, ch <-chan string, want ...string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-ch:
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return line
			}
		case <-timeout:
			t.Fatalf("no log record with %q within 10 s", want)
		}
	}
}

func drain(ch <-chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// copyFiles copies names from src to dst the way an operator's tar does:
// each file in place, one after another.
func copyFiles(t *testing.T, src, dst string, names ...string) {
	t.Helper()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(src, n))
		if err := os.WriteFile(filepath.Join(dst, n), data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFiles(t, src, dst, e.Name())
	}
	return dst
}

// reloadCounts reads devicegate_ca_intermediate_reloads_total by result.
func reloadCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "devicegate_ca_intermediate_reloads_total" {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return got
}

// TestRotateWhileRunning: a running CA node (Run, the HTTPS API on
// loopback, a real store) picks up a rotation from its CA directory
// without a restart. Partial or foreign intermediates copied in are
// refused: the node keeps issuing with, and trusting, what it had, and
// logs and counts each refusal. The complete rotation is used at the next
// reload: new devices and renewals come from the new intermediate (its
// CRL at the URL they name), devices of the old one still pass the API's
// handshake; after `retire` they do not.
func TestRotateWhileRunning(t *testing.T) {
	f := newFixture(t)
	caDir := filepath.Join(f.dir, "ca")
	logs := make(chan string, 1000)
	opts := f.ca.opts
	opts.Dir, opts.ReloadEvery, opts.Logger = caDir, 20*time.Millisecond, slog.New(logSignal{ch: logs})
	var err error
	if f.ca, err = New(f.ctx, f.ca.Keys(), f.store, opts); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	f.ca.RegisterMetrics(reg)
	url := startServer(t, f)
	f.ca.opts.PublicURL = url
	// Renewal is allowed at any time for a sub-account whose window ends soon.
	sub, err := f.store.SetValidity(f.ctx, f.tenant.ID, f.alice.ID, store.Window{NotAfter: f.now.Add(10 * 24 * time.Hour)}, testActor)
	if err != nil {
		t.Fatal(err)
	}
	bob := f.protectedSub("bob", 2)
	issue := func(t *testing.T, s store.SubAccount) (*Issued, crypto.Signer) {
		t.Helper()
		key := newKey(t)
		is, err := f.ca.Issue(f.ctx, IssueRequest{TenantID: s.TenantID, SubID: s.ID, CSR: newCSR(t, key, nil), Label: "pc"})
		if err != nil {
			t.Fatal(err)
		}
		return is, key
	}
	// mtls is a request to the API with a device's certificate, sent
	// whatever CAs the server names: the handshake verifies it against
	// the node's device intermediates.
	mtls := func(is *Issued, key crypto.Signer) error {
		cert := tlsCert(is.Chain, key)
		tc := &tls.Config{RootCAs: f.ca.Keys().RootPool(),
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 20 * time.Second}
		resp, err := c.Get(url + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}
	oldCert := f.ca.Keys().Device
	oldA, keyA := issue(t, sub)
	oldD, keyD := issue(t, bob)
	oldE, keyE := issue(t, sub) // renewable any time: alice's window ends soon

	ctx, cancel := context.WithCancel(f.ctx)
	ran := make(chan error, 1)
	go func() { ran <- f.ca.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// The rotation, made on a copy of the directory as on another host.
	staging := copyDir(t, caDir)
	if _, err := NewIntermediate(staging, "", f.now); err != nil {
		t.Fatal(err)
	}
	if err := ActivateIntermediate(staging, "devices-2"); err != nil {
		t.Fatal(err)
	}
	other := newCADir(t, "other")
	keysBefore := f.ca.Keys()
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T)
		want    string // in the logged error
	}{
		{"state file ahead of the files", func(t *testing.T) {
			copyFiles(t, staging, caDir, DeviceStateFile)
		}, "devices-2.crt: no such file"},
		{"half-copied certificate", func(t *testing.T) {
			data, _ := os.ReadFile(filepath.Join(staging, "devices-2.crt"))
			if err := os.WriteFile(filepath.Join(caDir, "devices-2.crt"), data[:len(data)/2], 0o644); err != nil {
				t.Fatal(err)
			}
		}, "devices-2.crt: no PEM certificate"},
		{"certificate without its key", func(t *testing.T) {
			copyFiles(t, staging, caDir, "devices-2.crt")
		}, "devices-2.key: no such file"},
		{"another intermediate's key", func(t *testing.T) {
			data, _ := os.ReadFile(filepath.Join(other, DeviceKeyFile))
			if err := os.WriteFile(filepath.Join(caDir, "devices-2.key"), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not match"},
		{"another root's intermediate", func(t *testing.T) {
			for from, to := range map[string]string{DeviceCertFile: "devices-2.crt", DeviceKeyFile: "devices-2.key"} {
				data, _ := os.ReadFile(filepath.Join(other, from))
				if err := os.WriteFile(filepath.Join(caDir, to), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, "not signed by the root"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			drain(logs)
			tc.prepare(t)
			awaitLog(t, logs, "reload failed, keeping the current ones", tc.want)
			if f.ca.Keys() != keysBefore {
				t.Fatal("a refused reload changed the node's intermediates")
			}
			is, _ := issue(t, bob)
			if !bytes.Equal(is.Chain[1].Raw, oldCert.Raw) {
				t.Fatal("after a refused reload the node issues from another intermediate")
			}
			if _, err := f.ca.RevokeDevice(f.ctx, is.Device.TenantID, is.Device.ID, store.ReasonCessationOfOperation, testActor); err != nil {
				t.Fatal(err) // keep bob's quota free
			}
		})
		if t.Failed() {
			return
		}
	}
	if got := reloadCounts(t, reg); got["failed"] < 5 || got["reloaded"] != 0 {
		t.Fatalf("reload counts after the refusals: %v", got)
	}

	// The complete copy (the files the operations guide names).
	drain(logs)
	copyFiles(t, staging, caDir, "devices-2.crt", "devices-2.key", RootCRLFile, DeviceStateFile)
	awaitLog(t, logs, "device intermediates reloaded", "active=devices-2")
	newCert := f.ca.Keys().Device
	if bytes.Equal(newCert.Raw, oldCert.Raw) {
		t.Fatal("the reloaded node's active intermediate is the old one")
	}
	newB, keyB := issue(t, bob)
	if !bytes.Equal(newB.Chain[1].Raw, newCert.Raw) || newB.Chain[0].CheckSignatureFrom(newCert) != nil {
		t.Fatal("an enrollment after the reload is not issued by the new intermediate")
	}
	crlURL := newB.Chain[0].CRLDistributionPoints
	if len(crlURL) != 1 || crlURL[0] != url+"/crl/devices-2" {
		t.Fatalf("the new certificate names CRL %v", crlURL)
	}
	resp, err := httpClient(f, nil).Get(crlURL[0])
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if crl, err := x509.ParseRevocationList(der); err != nil || crl.CheckSignatureFrom(newCert) != nil {
		t.Fatalf("%s: not the new intermediate's CRL (%d, %v)", crlURL[0], resp.StatusCode, err)
	}
	for name, dev := range map[string]struct {
		is  *Issued
		key crypto.Signer
	}{"old device": {oldA, keyA}, "new device": {newB, keyB}} {
		if err := mtls(dev.is, dev.key); err != nil {
			t.Fatalf("%s refused by the API after the reload: %v", name, err)
		}
	}
	status, _, apiErr, renewed, _ := renewOverHTTP(t, f, url, oldA, keyA)
	if status != 201 || renewed.Chain[0].CheckSignatureFrom(newCert) != nil {
		t.Fatalf("renewal of an old device: %d %+v, or not issued by the new intermediate", status, apiErr)
	}
	if got, want := gaugeValues(t, reg), map[string]float64{"devices-2/active": 2, "devices/trusted": 2, "unattributed/": 0}; !maps.Equal(got, want) {
		t.Fatalf("gauge after the reload %v, want %v", got, want)
	}

	// E holds a keep-alive connection and a TLS session ticket from before
	// the retirement.
	var reused []bool
	eCert := tlsCert(oldE.Chain, keyE)
	eTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.Keys().RootPool(), ClientSessionCache: tls.NewLRUClientSessionCache(4),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return eCert, nil }}}
	eClient := &http.Client{Transport: versioned{eTransport}, Timeout: 20 * time.Second}
	eGet := func(path string, body io.Reader) (*http.Response, error) {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		method := http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(f.ctx, trace), method, url+path, body)
		req.Header.Set("Content-Type", "application/json")
		return eClient.Do(req)
	}
	for range 2 { // the second resumes: the session ticket is in the cache
		resp, err := eGet("/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.TLS == nil {
			t.Fatal("no TLS")
		}
		eTransport.CloseIdleConnections()
	}
	if resp, err := eGet("/healthz", nil); err != nil || !resp.TLS.DidResume {
		t.Fatalf("E's session is not resumed before the retirement (%v): the checks below would not test resumption", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// End of the overlap: the old intermediate's devices are refused.
	if err := RetireIntermediate(staging, "devices"); err != nil {
		t.Fatal(err)
	}
	drain(logs)
	copyFiles(t, staging, caDir, DeviceStateFile)
	awaitLog(t, logs, "device intermediates reloaded", "retired=[devices]")
	if err := mtls(oldD, keyD); err == nil {
		t.Fatal("a device of the retired intermediate passed the API's handshake")
	}
	// E's connection opened before the retirement: its renewal is refused
	// as unauthenticated (not as too early: E may renew any time).
	reused = nil
	b, _ := json.Marshal(map[string]string{"csr": string(newCSR(t, newKey(t), nil))})
	resp, err = eGet("/v1/renew", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(reused) != 1 || !reused[0] {
		t.Fatalf("the renewal did not use E's open connection (%v): the check does not test it", reused)
	}
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"unauthenticated"`) {
		t.Fatalf("renewal on a connection opened before the retirement: %d %.200s", resp.StatusCode, body)
	}
	// A new connection resuming E's session from before is refused too.
	eTransport.CloseIdleConnections()
	if resp, err := eGet("/healthz", nil); err == nil {
		resp.Body.Close()
		t.Fatalf("a session of a retired intermediate's device resumed (resumed %v)", resp.TLS.DidResume)
	}
	if err := mtls(newB, keyB); err != nil {
		t.Fatalf("a device of the active intermediate refused after the retirement: %v", err)
	}
	if got := reloadCounts(t, reg); got["reloaded"] != 2 {
		t.Fatalf("reload counts: %v, want 2 reloads", got)
	}
}
