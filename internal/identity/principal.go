package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Principal is who a device certificate speaks for. Only the IDs are
// trusted; DisplayName (the certificate CN, "store:name") is informational.
type Principal struct {
	TrustDomain string
	TenantID    string
	SubID       string
	DeviceID    string
	DisplayName string
}

// URI renders spiffe://<trust-domain>/store/<tenant>/sub/<sub>/device/<device>.
func (p Principal) URI() *url.URL {
	return &url.URL{
		Scheme: "spiffe",
		Host:   p.TrustDomain,
		Path:   "/store/" + p.TenantID + "/sub/" + p.SubID + "/device/" + p.DeviceID,
	}
}

// ValidateTrustDomain checks a SPIFFE trust domain: lower-case letters,
// digits, '.', '-' and '_', at most 255 bytes.
func ValidateTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return errors.New("trust domain must be 1..255 characters")
	}
	for _, r := range td {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("trust domain %q: only a-z, 0-9, '.', '-' and '_' are allowed", td)
		}
	}
	return nil
}

// validID matches the IDs store.NewID produces (and nothing with path syntax).
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// ParseURI parses a device identity URI and checks it belongs to trustDomain.
func ParseURI(raw, trustDomain string) (Principal, error) {
	if len(raw) > 512 {
		return Principal{}, errors.New("identity URI too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Principal{}, fmt.Errorf("identity URI: %w", err)
	}
	if u.Scheme != "spiffe" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Port() != "" {
		return Principal{}, errors.New("identity URI is not a plain spiffe:// URI")
	}
	if u.Host != trustDomain {
		return Principal{}, fmt.Errorf("identity URI trust domain %q is not %q", u.Host, trustDomain)
	}
	if u.RawPath != "" {
		return Principal{}, errors.New("identity URI path must not be percent-encoded")
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 7 || parts[0] != "" || parts[1] != "store" || parts[3] != "sub" || parts[5] != "device" {
		return Principal{}, errors.New("identity URI path is not /store/<id>/sub/<id>/device/<id>")
	}
	p := Principal{TrustDomain: trustDomain, TenantID: parts[2], SubID: parts[4], DeviceID: parts[6]}
	if !validID(p.TenantID) || !validID(p.SubID) || !validID(p.DeviceID) {
		return Principal{}, errors.New("identity URI contains an invalid id")
	}
	return p, nil
}

// FromCertificate extracts the principal of a device certificate. It insists
// on exactly one URI SAN and on clientAuth as the only extended key usage;
// chain and revocation checks are the caller's job.
func FromCertificate(cert *x509.Certificate, trustDomain string) (Principal, error) {
	if cert == nil {
		return Principal{}, errors.New("no certificate")
	}
	if len(cert.URIs) != 1 {
		return Principal{}, fmt.Errorf("certificate has %d URI SANs, want exactly 1", len(cert.URIs))
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || len(cert.UnknownExtKeyUsage) != 0 {
		return Principal{}, errors.New("certificate is not a client-authentication-only certificate")
	}
	p, err := ParseURI(cert.URIs[0].String(), trustDomain)
	if err != nil {
		return Principal{}, err
	}
	p.DisplayName = cert.Subject.CommonName
	return p, nil
}
