// Package client is the library behind `devicegate enroll`: it trusts the
// CA (root file or fingerprint), generates the key locally, enrolls with a
// one-time code and writes the key, certificates and a PKCS#12 bundle.
package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/devicegate/devicegate/api"
)

// maxResponse bounds every response body read from the CA.
const maxResponse = 1 << 20

// Trust says how the CA's TLS certificate is verified.
type Trust struct {
	RootFile    string // PEM root certificate(s)
	Fingerprint string // hex SHA-256 of the root certificate (DER); ':' and case ignored
	// AllowInsecureHTTP permits http:// to a loopback host (tests only).
	AllowInsecureHTTP bool
}

// checkURL refuses anything but https (and, if allowed, http to loopback).
func checkURL(raw string, t Trust) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("CA URL %q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); t.AllowInsecureHTTP && (u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("CA URL must be https:// (got %q)", raw)
}

// rootPool resolves Trust into the pool that verifies the CA: from the root
// file, or by fetching /v1/roots.pem once without verification and keeping
// only a root whose fingerprint matches exactly.
func rootPool(ctx context.Context, base *url.URL, t Trust) (*x509.CertPool, []*x509.Certificate, error) {
	switch {
	case t.RootFile != "" && t.Fingerprint != "":
		return nil, nil, errors.New("use either a root file or a fingerprint, not both")
	case t.RootFile != "":
		data, err := os.ReadFile(t.RootFile)
		if err != nil {
			return nil, nil, err
		}
		roots, err := parseCerts(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", t.RootFile, err)
		}
		return poolOf(roots), roots, nil
	case t.Fingerprint != "":
		want, err := ParseFingerprint(t.Fingerprint)
		if err != nil {
			return nil, nil, err
		}
		// This one request is not verified: its answer is only accepted if
		// it contains the root the user named by fingerprint.
		insecure := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
		}}
		data, err := get(ctx, insecure, base.JoinPath(api.RootsPath).String())
		if err != nil {
			return nil, nil, fmt.Errorf("fetch CA roots: %w", err)
		}
		roots, err := parseCerts(data)
		if err != nil {
			return nil, nil, fmt.Errorf("CA roots: %w", err)
		}
		for _, r := range roots {
			sum := sha256.Sum256(r.Raw)
			if subtle.ConstantTimeCompare(sum[:], want) == 1 {
				return poolOf([]*x509.Certificate{r}), []*x509.Certificate{r}, nil
			}
		}
		return nil, nil, errors.New("the CA's root does not match the fingerprint: refusing to trust it")
	}
	return nil, nil, errors.New("a root file (--root) or fingerprint (--fingerprint) is required to trust the CA")
}

// ParseFingerprint reads a hex SHA-256 fingerprint; ':' separators, spaces
// around it and case are ignored.
func ParseFingerprint(s string) ([]byte, error) {
	want, err := hex.DecodeString(strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", "")))
	if err != nil || len(want) != sha256.Size {
		return nil, errors.New("fingerprint must be a hex SHA-256 (64 hex digits)")
	}
	return want, nil
}

// FetchRoot returns the CA's root certificate as Trust names it: the one
// certificate of a root file, or the root the CA at rawURL serves whose
// fingerprint matches.
func FetchRoot(ctx context.Context, rawURL string, t Trust) (*x509.Certificate, error) {
	var base *url.URL
	if t.RootFile == "" {
		var err error
		if base, err = checkURL(rawURL, t); err != nil {
			return nil, err
		}
	}
	_, roots, err := rootPool(ctx, base, t)
	if err != nil {
		return nil, err
	}
	if len(roots) != 1 {
		return nil, fmt.Errorf("%s holds %d certificates: give a file with the root alone", t.RootFile, len(roots))
	}
	return roots[0], nil
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// parseCerts reads every CERTIFICATE block of a PEM bundle.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func get(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	return body, nil
}
