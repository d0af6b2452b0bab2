package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"slices"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/store"
)

// A device certificate names where its revocation is published (CRL
// Distribution Point and OCSP in AIA), built from the CA's public URL, and
// both answer for it from a running CA server once it is revoked: what
// nginx, HAProxy, Windows or Java need to check it by themselves.
func TestDeviceCertificateNamesCRLAndOCSP(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	f.ca.opts.PublicURL = url + "/" // a trailing slash is not doubled
	keep, gone := f.issue(f.alice), f.issue(f.alice)
	for _, is := range []*Issued{keep, gone} {
		leaf := is.Chain[0]
		if want := []string{url + "/crl"}; !slices.Equal(leaf.CRLDistributionPoints, want) {
			t.Fatalf("CRLDistributionPoints %q, want %q", leaf.CRLDistributionPoints, want)
		}
		if want := []string{url + "/ocsp"}; !slices.Equal(leaf.OCSPServer, want) {
			t.Fatalf("OCSPServer %q, want %q", leaf.OCSPServer, want)
		}
	}
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, gone.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	c := httpClient(f, nil)

	// The CRL at the distribution point lists the revoked certificate only.
	resp, err := c.Get(gone.Chain[0].CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	if err != nil || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("CRL at the distribution point: %v (%s)", err, resp.Header.Get("Content-Type"))
	}
	if err := crl.CheckSignatureFrom(f.ca.Keys().Device); err != nil {
		t.Fatal(err)
	}
	if _, ok := crlHas(crl, gone.Chain[0].SerialNumber); !ok {
		t.Fatal("revoked certificate missing from the CRL at its distribution point")
	}
	if _, ok := crlHas(crl, keep.Chain[0].SerialNumber); ok {
		t.Fatal("active certificate listed in the CRL")
	}

	// The OCSP responder named in AIA answers revoked / good.
	for _, tc := range []struct {
		cert   *x509.Certificate
		status int
	}{{gone.Chain[0], ocsp.Revoked}, {keep.Chain[0], ocsp.Good}} {
		if got := postOCSP(t, f.ctx, c, tc.cert, f.ca.Keys().Device); got.Status != tc.status {
			t.Fatalf("OCSP at %s for %s: status %d, want %d", tc.cert.OCSPServer[0], SerialHex(tc.cert), got.Status, tc.status)
		}
	}
}

// Without a public URL (a library user, a test) nothing is added, and a
// public URL that is not an absolute http(s) URL stops New.
func TestRevocationURLsOptional(t *testing.T) {
	f := newFixture(t)
	leaf := f.issue(f.alice).Chain[0]
	if len(leaf.CRLDistributionPoints)+len(leaf.OCSPServer) != 0 {
		t.Fatalf("no public URL, yet CDP %q OCSP %q", leaf.CRLDistributionPoints, leaf.OCSPServer)
	}
	for _, bad := range []string{"ca.example:8443", "ftp://ca.example", "https://", "https://ca.example/?x=1", "https://ca.example/#f", "https://u:p@ca.example"} {
		if _, err := New(f.ctx, f.ca.Keys(), f.store, Options{PublicURL: bad}); err == nil {
			t.Errorf("New accepted public URL %q", bad)
		}
	}
	if _, err := New(f.ctx, f.ca.Keys(), f.store, Options{PublicURL: "https://ca.shop.example:8443"}); err != nil {
		t.Errorf("New refused a good public URL: %v", err)
	}
}

func postOCSP(t *testing.T, ctx context.Context, c *http.Client, cert, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	reqDER, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cert.OCSPServer[0], bytes.NewReader(reqDER))
	req.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		t.Fatalf("OCSP response: %v", err)
	}
	return r
}
