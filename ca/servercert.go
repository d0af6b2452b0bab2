package ca

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// ServerCertValidity is the lifetime of TLS server certificates from the
// internal server CA; certmagic renews them when a third is left.
const ServerCertValidity = 30 * 24 * time.Hour

// ServerIssuer is a certmagic.Issuer that signs TLS server certificates with
// the internal server intermediate, for an allow-list of host names only.
type ServerIssuer struct {
	keys  *Keys
	hosts []string
}

var _ certmagic.Issuer = (*ServerIssuer)(nil)

// NewServerIssuer allows certificates for hosts (DNS names or IPs).
func NewServerIssuer(k *Keys, hosts []string) *ServerIssuer {
	return &ServerIssuer{keys: k, hosts: hosts}
}

// IssuerKey identifies certificates of this CA in certmagic's storage.
func (s *ServerIssuer) IssuerKey() string {
	return "devicegate-" + Fingerprint(s.keys.Server)[:16]
}

// Issue signs a serverAuth certificate for the CSR's names.
func (s *ServerIssuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("server CSR: %w", err)
	}
	names := append(slices.Clone(csr.DNSNames), ipStrings(csr.IPAddresses)...)
	if len(names) == 0 || len(csr.URIs)+len(csr.EmailAddresses) != 0 {
		return nil, errors.New("server CSR must name DNS names or IPs only")
	}
	for _, n := range names {
		if !slices.Contains(s.hosts, n) {
			return nil, fmt.Errorf("server certificate for %q is not allowed", n)
		}
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ServerCertValidity),
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(csr.DNSNames) > 0 {
		tmpl.Subject.CommonName = csr.DNSNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.keys.Server, csr.PublicKey, s.keys.ServerKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	// certmagic stores the chain: leaf then the server intermediate.
	return &certmagic.IssuedCertificate{Certificate: append(pemCert(leaf), s.keys.ServerPEM...)}, nil
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// ServerTLS returns a TLS config whose certificates for hosts are issued by
// the internal server CA and kept in storageDir by certmagic (obtained now,
// renewed in the background until ctx ends).
func ServerTLS(ctx context.Context, k *Keys, storageDir string, hosts []string) (*tls.Config, error) {
	cfg := newCertConfig(ctx, storageDir, "")
	cfg.Issuers = []certmagic.Issuer{NewServerIssuer(k, hosts)}
	if err := cfg.ManageSync(ctx, hosts); err != nil {
		return nil, fmt.Errorf("obtain TLS server certificate: %w", err)
	}
	return serverTLSConfig(cfg), nil
}

// newCertConfig is a certmagic config with its own cache, stored under
// storageDir, stopped when ctx ends. defaultName is the certificate served
// to clients that send no SNI.
func newCertConfig(ctx context.Context, storageDir, defaultName string) *certmagic.Config {
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zap.NewNop(),
	})
	cfg = certmagic.New(cache, certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: storageDir},
		Logger:            zap.NewNop(),
		DefaultServerName: defaultName,
	})
	go func() { <-ctx.Done(); cache.Stop() }()
	return cfg
}

// serverTLSConfig: HTTP/2 and HTTP/1.1, TLS 1.2 at least, certificates
// from cfg (and its ACME TLS-ALPN challenges answered on the same port).
func serverTLSConfig(cfg *certmagic.Config) *tls.Config {
	tc := cfg.TLSConfig()
	tc.NextProtos = []string{"h2", "http/1.1", "acme-tls/1"}
	tc.MinVersion = tls.VersionTLS12
	return tc
}

// ACMEOptions say where the HTTPS listeners get their certificate by ACME.
type ACMEOptions struct {
	DirectoryURL string         // the ACME CA's directory (public, or a private one)
	Email        string         // account contact, optional
	Hosts        []string       // names to certify
	Roots        *x509.CertPool // trust for a private ACME CA's own HTTPS (nil: system roots)
	TLSALPNPort  int            // the port the CA connects to for TLS-ALPN-01 (443 unless forwarded)
}

// ServerTLSFromACME gets and renews the server certificate from an ACME CA
// with the TLS-ALPN-01 challenge, answered by the returned config on the
// HTTPS listeners themselves (no port 80 needed). Call the returned start
// once the listeners are bound: started earlier, certmagic would bind the
// challenge port itself and take it from the server. Certificates are kept
// under storageDir, so a restart serves the stored one at once.
func ServerTLSFromACME(ctx context.Context, o ACMEOptions, storageDir string) (*tls.Config, func(context.Context) error, error) {
	if len(o.Hosts) == 0 {
		return nil, nil, errors.New("ACME: no host names to certify")
	}
	cfg := newCertConfig(ctx, storageDir, o.Hosts[0])
	cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:                   o.DirectoryURL,
		Email:                o.Email,
		Agreed:               true,
		DisableHTTPChallenge: true,
		AltTLSALPNPort:       o.TLSALPNPort,
		TrustedRoots:         o.Roots,
		Logger:               zap.NewNop(),
	})}
	start := func(ctx context.Context) error { return cfg.ManageAsync(ctx, o.Hosts) }
	return serverTLSConfig(cfg), start, nil
}

// ServerTLSFromFiles serves the certificate in certFile/keyFile (PEM; the
// chain leaf first) through certmagic's cache, for operators who bring
// their own server certificate. It is checked at start: a missing,
// mismatched or expired certificate stops start-up.
func ServerTLSFromFiles(ctx context.Context, certFile, keyFile, storageDir string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
	}
	if time.Now().After(leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired on %s", certFile, leaf.NotAfter.Format(time.DateOnly))
	}
	names := append(append([]string(nil), leaf.DNSNames...), ipStrings(leaf.IPAddresses)...)
	if len(names) == 0 {
		return nil, fmt.Errorf("TLS certificate %s names no host (no DNS or IP SAN)", certFile)
	}
	// Clients that send no SNI (IP addresses) get this certificate too.
	cfg := newCertConfig(ctx, storageDir, names[0])
	if _, err := cfg.CacheUnmanagedTLSCertificate(ctx, pair, nil); err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	return serverTLSConfig(cfg), nil
}
