package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ProxyURI is the identity of a proxy node allowed to read the CA's
// revocation feed: spiffe://<trust-domain>/proxy/<name>.
func ProxyURI(trustDomain, name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/proxy/" + name}
}

// ValidateProxyName allows the same characters as a store name.
func ValidateProxyName(name string) error {
	if err := ValidateStoreName(name); err != nil {
		return fmt.Errorf("proxy name: %w", err)
	}
	return nil
}

// ProxyFromCertificate returns the proxy name of a proxy client certificate
// (exactly one URI SAN, clientAuth only). Device certificates are refused.
func ProxyFromCertificate(cert *x509.Certificate, trustDomain string) (string, error) {
	if cert == nil || len(cert.URIs) != 1 {
		return "", errors.New("not a proxy certificate: want exactly one URI SAN")
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		return "", errors.New("not a proxy certificate: want clientAuth as the only EKU")
	}
	u := cert.URIs[0]
	if u.Scheme != "spiffe" || u.Host != trustDomain || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.RawPath != "" {
		return "", errors.New("not a proxy certificate of this trust domain")
	}
	name, ok := strings.CutPrefix(u.Path, "/proxy/")
	if !ok {
		return "", errors.New("not a proxy certificate")
	}
	if err := ValidateProxyName(name); err != nil {
		return "", err
	}
	return name, nil
}
