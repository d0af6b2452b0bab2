package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/devicegate/devicegate/api"
)

// Options of one enrollment.
type Options struct {
	URL         string // CA base URL, e.g. https://localhost:8443
	Code        string // one-time enrollment code
	Label       string // device label shown to the owner
	OutDir      string
	P12Password string // required: the .p12 is never written without one
	Overwrite   bool   // replace an existing key.pem
	Trust       Trust
	UserAgent   string
}

// Result describes the enrolled device.
type Result struct {
	DeviceID   string
	Serial     string
	SubAccount string
	NotAfter   time.Time
	Installed  int
	Limit      int
	Files      []string
}

// Enroll generates a P-256 key here, asks the CA for a certificate and
// writes the files. Nothing is written unless everything succeeded. A
// refusal of the CA is an *api.Error: Message is the seeds' text (e.g. the
// limit message) in English, MessageZH in Chinese.
func Enroll(ctx context.Context, o Options) (*Result, error) {
	if o.Code == "" {
		return nil, errors.New("an enrollment code is required")
	}
	if o.OutDir == "" {
		return nil, errors.New("an output directory is required")
	}
	if o.P12Password == "" {
		return nil, errors.New("a PKCS#12 password is required")
	}
	if err := checkOutDir(o.OutDir, o.Overwrite); err != nil {
		return nil, err
	}
	base, err := checkURL(o.URL, o.Trust)
	if err != nil {
		return nil, err
	}
	pool, roots, err := rootPool(ctx, base, o.Trust)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	resp, err := postEnroll(ctx, base.JoinPath(api.EnrollPath).String(), pool, o, csr)
	if err != nil {
		return nil, err
	}
	chain, err := verifyIssued(resp, key.Public(), pool)
	if err != nil {
		return nil, err
	}
	files, err := writeFiles(o, key, chain, roots)
	if err != nil {
		return nil, err
	}
	return &Result{DeviceID: resp.DeviceID, Serial: resp.Serial, SubAccount: resp.SubAccount, NotAfter: resp.NotAfter,
		Installed: resp.Installed, Limit: resp.Limit, Files: files}, nil
}

func postEnroll(ctx context.Context, u string, pool *x509.CertPool, o Options, csrDER []byte) (*api.Certificate, error) {
	body, err := json.Marshal(api.EnrollRequest{
		Code:  o.Code,
		CSR:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		Label: o.Label,
	})
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	ua := o.UserAgent
	if ua == "" {
		ua = "devicegate-enroll"
	}
	return postWithRetry(ctx, c, u, ua, body)
}

// postWithRetry sends an enrollment or renewal and reads the certificate.
// The identical request is sent again after a transport error or a 5xx:
// if the CA recorded the certificate but the answer was lost, it hands out
// the same certificate again (same code or same old certificate, same
// key); if it recorded nothing, nothing was used up.
func postWithRetry(ctx context.Context, c *http.Client, u, ua string, body []byte) (*api.Certificate, error) {
	var status int
	var header http.Header
	var data []byte
	var err error
	for attempt := 0; ; attempt++ {
		status, header, data, err = postOnce(ctx, c, u, ua, body)
		if err == nil && status < 500 || attempt >= len(retryDelays) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retryDelays[attempt]):
		}
	}
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated {
		return nil, api.DecodeError(status, data)
	}
	// An older CA states no version; one of another major is not read.
	if err := api.CheckHeader(header, false); err != nil {
		return nil, fmt.Errorf("CA answer: %w", err)
	}
	var out api.Certificate
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("CA answer is not valid JSON: %w", err)
	}
	return &out, nil
}

// retryDelays are the waits before each retry of an enrollment whose answer
// was lost: three tries within about five seconds.
var retryDelays = []time.Duration{time.Second, 3 * time.Second}

// postOnce sends one enrollment request and reads the answer.
func postOnce(ctx context.Context, c *http.Client, u, ua string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", ua)
	api.SetHeader(req.Header)
	r, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer r.Body.Close()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxResponse))
	if err != nil {
		return 0, nil, nil, err
	}
	return r.StatusCode, r.Header, data, nil
}

// verifyIssued checks the certificate is for our key and chains to the
// trusted root for client authentication.
func verifyIssued(resp *api.Certificate, pub crypto.PublicKey, pool *x509.CertPool) ([]*x509.Certificate, error) {
	chain, err := parseCerts([]byte(resp.Chain))
	if err != nil {
		return nil, fmt.Errorf("CA answer: %w", err)
	}
	leaf := chain[0]
	if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		return nil, errors.New("the CA returned a certificate for another key: refusing it")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the issued certificate does not verify: %w", err)
	}
	return chain, nil
}
