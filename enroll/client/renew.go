package client

import (
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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devicegate/devicegate/api"
)

// RenewOptions of one renewal of an enrolled device's certificate.
type RenewOptions struct {
	Dir         string // the directory `devicegate enroll --out` wrote
	URL         string // CA base URL; empty: the one the certificate names
	P12Password string // for the new device.p12
	UserAgent   string
}

// Renewed describes the new certificate.
type Renewed struct {
	DeviceID   string
	Serial     string // the new serial
	OldSerial  string // superseded by the renewal
	SubAccount string
	NotAfter   time.Time
	Files      []string
}

// Renew gives the device in o.Dir a new certificate for a new key from
// /v1/renew, authenticated with the current certificate and key (mTLS); the
// device keeps its id and its quota slot and the old serial is revoked as
// superseded. The files are replaced only when the new certificate checked.
// A lost answer is asked for again with the identical request: the CA then
// hands out the certificate it recorded.
func Renew(ctx context.Context, o RenewOptions) (*Renewed, error) {
	if o.P12Password == "" {
		return nil, errors.New("a PKCS#12 password is required")
	}
	cur, err := loadDevice(o.Dir)
	if err != nil {
		return nil, err
	}
	raw := o.URL
	if raw == "" {
		if raw = caURLOf(cur.chain[0]); raw == "" {
			return nil, errors.New("the certificate names no CA URL: give --url")
		}
	}
	base, err := checkURL(raw, Trust{})
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
	body, err := json.Marshal(api.RenewRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if err != nil {
		return nil, err
	}
	pool := poolOf(cur.roots)
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: rawChain(cur.chain), PrivateKey: cur.key, Leaf: cur.chain[0]}},
	}}}
	ua := o.UserAgent
	if ua == "" {
		ua = "devicegate-renew"
	}
	resp, err := postWithRetry(ctx, c, base.JoinPath(api.RenewPath).String(), ua, body)
	if err != nil {
		return nil, err
	}
	chain, err := verifyIssued(resp, key.Public(), pool)
	if err != nil {
		return nil, err
	}
	if !sameIdentity(chain[0], cur.chain[0]) {
		return nil, errors.New("the CA's new certificate names another device or sub-account: refusing it")
	}
	files, err := writeFiles(Options{OutDir: o.Dir, P12Password: o.P12Password}, key, chain, cur.roots)
	if err != nil {
		return nil, err
	}
	return &Renewed{DeviceID: resp.DeviceID, Serial: resp.Serial, OldSerial: serialHex(cur.chain[0]), SubAccount: resp.SubAccount,
		NotAfter: resp.NotAfter, Files: files}, nil
}

// device is what enroll wrote: the key, the chain it presents, the roots
// it trusts the CA with.
type device struct {
	key   crypto.Signer
	chain []*x509.Certificate
	roots []*x509.Certificate
}

// loadDevice reads and checks the files of an enrolled device.
func loadDevice(dir string) (*device, error) {
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%s is not a directory written by `devicegate enroll`: %w", dir, err)
		}
		return data, nil
	}
	keyPEM, err := read("key.pem")
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PKCS#8 private key", filepath.Join(dir, "key.pem"))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "key.pem"), err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", filepath.Join(dir, "key.pem"))
	}
	d := &device{key: signer}
	for _, f := range []struct {
		name string
		dst  *[]*x509.Certificate
	}{{"chain.pem", &d.chain}, {"root.pem", &d.roots}} {
		data, err := read(f.name)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = parseCerts(data); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, f.name), err)
		}
	}
	if !d.chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		return nil, fmt.Errorf("%s: key.pem does not belong to the certificate in chain.pem", dir)
	}
	return d, nil
}

// caURLOf is the CA's base URL as the certificate's OCSP address names it
// (the CA's public_url followed by /ocsp).
func caURLOf(leaf *x509.Certificate) string {
	for _, s := range leaf.OCSPServer {
		if u, err := url.Parse(s); err == nil && u.Scheme == "https" && strings.HasSuffix(u.Path, "/ocsp") {
			u.Path = strings.TrimSuffix(u.Path, "/ocsp")
			return u.String()
		}
	}
	return ""
}

// sameIdentity: the renewed certificate names the same sub-account and
// device (common name and identity URI) as the one it replaces.
func sameIdentity(a, b *x509.Certificate) bool {
	if a.Subject.CommonName != b.Subject.CommonName || len(a.URIs) != len(b.URIs) {
		return false
	}
	for i := range a.URIs {
		if a.URIs[i].String() != b.URIs[i].String() {
			return false
		}
	}
	return true
}

func rawChain(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = c.Raw
	}
	return out
}

// serialHex is the certificate's serial as the CA writes it.
func serialHex(c *x509.Certificate) string { return strings.ToLower(c.SerialNumber.Text(16)) }
