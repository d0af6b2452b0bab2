package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"text/template"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"go.step.sm/crypto/x509util"
)

// clientLeafTemplate is the x509util template of every client certificate
// we sign (devices and proxies): the subject and SANs come from the
// template data we set, never from the CSR; clientAuth is the only EKU.
// Device certificates also name where their revocation is published.
const clientLeafTemplate = `{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
{{- with .CRLDistributionPoints }}
	"crlDistributionPoints": {{ toJson . }},
{{- end }}
{{- with .OCSPServer }}
	"ocspServer": {{ toJson . }},
{{- end }}
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"],
	"basicConstraints": {"isCA": false}
}`

// leafSpec is what a client certificate says and how long it lives.
type leafSpec struct {
	CommonName string
	URI        string
	NotBefore  time.Time
	NotAfter   time.Time
	CRLURL     string // CRL Distribution Point; "" for none
	OCSPURL    string // OCSP responder (Authority Information Access); "" for none
}

// revocationURLs are the extension values of spec: nil when unset.
func (spec leafSpec) revocationURLs() (crl, ocsp []string) {
	if spec.CRLURL != "" {
		crl = []string{spec.CRLURL}
	}
	if spec.OCSPURL != "" {
		ocsp = []string{spec.OCSPURL}
	}
	return crl, ocsp
}

// signer wraps smallstep's embedded authority with the device intermediate.
type signer struct {
	auth     *authority.Authority
	leafTmpl *template.Template // clientLeafTemplate, parsed once
}

// renderedTemplate hands the embedded authority our template, parsed once
// with x509util's function map. (x509util.WithTemplate parses the template
// and builds its function map on every call: 8 % of an issuance.)
type renderedTemplate struct {
	tmpl *template.Template
	data x509util.TemplateData
}

func (r renderedTemplate) Options(provisioner.SignOptions) []x509util.Option {
	return []x509util.Option{func(cr *x509.CertificateRequest, o *x509util.Options) error {
		r.data.SetCertificateRequest(cr)
		buf := new(bytes.Buffer)
		if err := r.tmpl.Execute(buf, r.data); err != nil {
			return fmt.Errorf("render certificate template: %w", err)
		}
		o.CertBuffer = buf
		return nil
	}}
}

func newDeviceSigner(k *Keys) (*signer, error) {
	a, err := authority.NewEmbedded(
		authority.WithX509RootCerts(k.Root),
		authority.WithX509SignerChain([]*x509.Certificate{k.Device}, k.DeviceKey),
		authority.WithDatabase(noAuthorityDB{}),
		authority.WithQuietInit(),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded authority: %w", err)
	}
	tmpl, err := template.New("client-leaf").Funcs(x509util.GetFuncMap()).Parse(clientLeafTemplate)
	if err != nil {
		return nil, err
	}
	return &signer{auth: a, leafTmpl: tmpl}, nil
}

// sign issues a client certificate for the CSR's public key. The embedded
// authority verifies the CSR's signature (proof of possession) before
// anything else; a CSR that fails it gets ErrCSRSignature.
func (s *signer) sign(ctx context.Context, csr *x509.CertificateRequest, spec leafSpec) ([]*x509.Certificate, error) {
	data := x509util.CreateTemplateData(spec.CommonName, []string{spec.URI})
	crl, ocsp := spec.revocationURLs()
	data.Set("CRLDistributionPoints", crl)
	data.Set("OCSPServer", ocsp)
	tmplOpts := renderedTemplate{tmpl: s.leafTmpl, data: data}
	validity := provisioner.CertificateEnforcerFunc(func(c *x509.Certificate) error {
		c.NotBefore, c.NotAfter = spec.NotBefore, spec.NotAfter
		return nil
	})
	chain, err := s.auth.SignWithContext(ctx, csr, provisioner.SignOptions{}, tmplOpts, validity, clientLeafCheck{spec: spec})
	if err != nil {
		if csr.CheckSignature() != nil {
			return nil, ErrCSRSignature
		}
		return nil, fmt.Errorf("sign: %w", err)
	}
	return chain, nil
}

// clientLeafCheck validates the final template before it is signed, so a
// template mistake can never produce a certificate with other powers.
type clientLeafCheck struct{ spec leafSpec }

func (v clientLeafCheck) Valid(c *x509.Certificate, _ provisioner.SignOptions) error {
	crl, ocsp := v.spec.revocationURLs()
	switch {
	case c.IsCA:
		return errors.New("client certificate must not be a CA")
	case len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth:
		return errors.New("client certificate must have clientAuth as its only EKU")
	case len(c.URIs) != 1 || c.URIs[0].String() != v.spec.URI:
		return errors.New("client certificate must carry exactly its identity URI")
	case len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0:
		return errors.New("client certificate must not carry other SANs")
	case !slices.Equal(c.CRLDistributionPoints, crl) || !slices.Equal(c.OCSPServer, ocsp) || len(c.IssuingCertificateURL) != 0:
		return errors.New("client certificate must name exactly its CRL and OCSP URLs")
	}
	return nil
}

// noAuthorityDB satisfies the embedded authority's database interface.
// devicegate's store is the source of truth for issued and revoked
// certificates, so the authority keeps nothing of its own.
type noAuthorityDB struct{}

func (noAuthorityDB) IsRevoked(string) (bool, error)             { return false, db.ErrNotImplemented }
func (noAuthorityDB) IsSSHRevoked(string) (bool, error)          { return false, db.ErrNotImplemented }
func (noAuthorityDB) Revoke(*db.RevokedCertificateInfo) error    { return db.ErrNotImplemented }
func (noAuthorityDB) RevokeSSH(*db.RevokedCertificateInfo) error { return db.ErrNotImplemented }
func (noAuthorityDB) GetCertificate(string) (*x509.Certificate, error) {
	return nil, db.ErrNotImplemented
}
func (noAuthorityDB) UseToken(string, string) (bool, error)   { return false, db.ErrNotImplemented }
func (noAuthorityDB) IsSSHHost(string) (bool, error)          { return false, db.ErrNotImplemented }
func (noAuthorityDB) GetSSHHostPrincipals() ([]string, error) { return nil, db.ErrNotImplemented }
func (noAuthorityDB) Shutdown() error                         { return nil }
