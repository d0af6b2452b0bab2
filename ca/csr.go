package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxCSRBytes bounds a CSR as received (PEM or DER).
const MaxCSRBytes = 64 << 10

// CSR errors; each is a client error with a clear message.
var (
	ErrCSRTooLarge      = fmt.Errorf("certificate request is larger than %d bytes", MaxCSRBytes)
	ErrCSRMalformed     = errors.New("certificate request is malformed")
	ErrCSRSignature     = errors.New("certificate request signature does not verify (tampered, or signed with another key)")
	ErrUnsupportedKey   = errors.New("unsupported key: use ECDSA P-256 or RSA with at least 2048 bits")
	ErrRSANotAllowed    = errors.New("unsupported key: this CA accepts only ECDSA P-256")
	minRSABits          = 2048
	maxRSABits          = 8192
	pemCertificateReq   = "CERTIFICATE REQUEST"
	pemNewCertficateReq = "NEW CERTIFICATE REQUEST"
)

// ParseCSR decodes a PKCS#10 request (PEM or DER), verifies its signature
// and enforces the key policy. Nothing else in the request is trusted: the
// identity comes from the ticket or session, never from the CSR.
func ParseCSR(data []byte, allowRSA bool) (*x509.CertificateRequest, error) {
	csr, err := parseCSRUnverified(data, allowRSA)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, ErrCSRSignature
	}
	return csr, nil
}

// parseCSRUnverified does everything ParseCSR does but the signature check,
// for callers that hand the CSR to the signer, which verifies it before
// signing (verifying twice cost a tenth of an issuance).
func parseCSRUnverified(data []byte, allowRSA bool) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRBytes {
		return nil, ErrCSRTooLarge
	}
	der := data
	if block, rest := pem.Decode(data); block != nil {
		if block.Type != pemCertificateReq && block.Type != pemNewCertficateReq {
			return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrCSRMalformed, block.Type, pemCertificateReq)
		}
		if extra, _ := pem.Decode(rest); extra != nil {
			return nil, fmt.Errorf("%w: more than one PEM block", ErrCSRMalformed)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCSRMalformed, err)
	}
	if err := checkKey(csr, allowRSA); err != nil {
		return nil, err
	}
	return csr, nil
}

func checkKey(csr *x509.CertificateRequest, allowRSA bool) error {
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return fmt.Errorf("%w (got ECDSA %s)", ErrUnsupportedKey, pub.Curve.Params().Name)
		}
		return nil
	case *rsa.PublicKey:
		if !allowRSA {
			return ErrRSANotAllowed
		}
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return fmt.Errorf("%w (got RSA %d bits)", ErrUnsupportedKey, bits)
		}
		return nil
	default:
		return fmt.Errorf("%w (got %s)", ErrUnsupportedKey, csr.PublicKeyAlgorithm)
	}
}
