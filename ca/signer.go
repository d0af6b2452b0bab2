package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"text/template"
	"time"

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

// signer signs client certificates with the device intermediate, using
// go.step.sm/crypto's x509util (smallstep's certificate library) directly.
// smallstep's authority.SignWithContext checks the CSR's signature twice
// (itself, then again in x509util.NewCertificate: one ECDSA verification,
// ~5 % of an HTTPS issuance, wasted) and adds nothing we configure (no
// policy engine, no webhooks, no default subject, no database); so the
// steps are done here, each once.
type signer struct {
	issuer   *x509.Certificate  // the device intermediate
	key      crypto.Signer      // its key
	leafTmpl *template.Template // clientLeafTemplate, parsed once
}

// renderedTemplate hands x509util our template, parsed once with
// x509util's function map. (x509util.WithTemplate parses the template and
// builds its function map on every call: 8 % of an issuance.)
type renderedTemplate struct {
	tmpl *template.Template
	data x509util.TemplateData
}

func (r renderedTemplate) option() x509util.Option {
	return func(cr *x509.CertificateRequest, o *x509util.Options) error {
		r.data.SetCertificateRequest(cr)
		buf := new(bytes.Buffer)
		if err := r.tmpl.Execute(buf, r.data); err != nil {
			return fmt.Errorf("render certificate template: %w", err)
		}
		o.CertBuffer = buf
		return nil
	}
}

func newDeviceSigner(k *Keys) (*signer, error) {
	if k.Device == nil || k.DeviceKey == nil {
		return nil, errors.New("no device intermediate to sign with")
	}
	tmpl, err := template.New("client-leaf").Funcs(x509util.GetFuncMap()).Parse(clientLeafTemplate)
	if err != nil {
		return nil, err
	}
	return &signer{issuer: k.Device, key: k.DeviceKey, leafTmpl: tmpl}, nil
}

// sign issues a client certificate for the CSR's public key. The CSR's
// signature (proof of possession) is verified before anything else, once,
// by x509util.NewCertificate; a CSR that fails it gets ErrCSRSignature.
// The rendered template is checked by clientLeafCheck before it is signed.
func (s *signer) sign(_ context.Context, csr *x509.CertificateRequest, spec leafSpec) ([]*x509.Certificate, error) {
	data := x509util.CreateTemplateData(spec.CommonName, []string{spec.URI})
	crl, ocsp := spec.revocationURLs()
	data.Set("CRLDistributionPoints", crl)
	data.Set("OCSPServer", ocsp)
	crt, err := x509util.NewCertificate(csr, renderedTemplate{tmpl: s.leafTmpl, data: data}.option())
	if err != nil {
		if csr.CheckSignature() != nil { // on the error path only: which error to name
			return nil, ErrCSRSignature
		}
		return nil, fmt.Errorf("sign: %w", err)
	}
	tmpl := crt.GetCertificate()
	tmpl.NotBefore, tmpl.NotAfter = spec.NotBefore, spec.NotAfter
	if err := (clientLeafCheck{spec: spec}).Valid(tmpl); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	leaf, err := x509util.CreateCertificate(tmpl, s.issuer, csr.PublicKey, s.key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return []*x509.Certificate{leaf, s.issuer}, nil
}

// clientLeafCheck validates the final template before it is signed, so a
// template mistake can never produce a certificate with other powers.
type clientLeafCheck struct{ spec leafSpec }

func (v clientLeafCheck) Valid(c *x509.Certificate) error {
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
