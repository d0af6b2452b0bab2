package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/store"
)

const maxOCSPRequest = 4 << 10

// ocspStatus answers one OCSP request (RFC 6960) for a certificate issued by
// a trusted device intermediate, which signs the response itself (the
// previous one during the overlap answers for its own certificates).
func (a *Authority) ocspStatus(ctx context.Context, req *ocsp.Request) ([]byte, error) {
	issuer := a.ocspIssuer(req)
	if issuer == nil {
		return ocsp.UnauthorizedErrorResponse, nil
	}
	serial := req.SerialNumber.Text(16)
	now := a.now()
	tmpl := ocsp.Response{
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(time.Hour),
		Status:       ocsp.Unknown,
	}
	if rv, ok := a.revs.lookup(serial); ok {
		tmpl.Status = ocsp.Revoked
		tmpl.RevokedAt = rv.RevokedAt
		tmpl.RevocationReason = int(rv.Reason)
	} else if dev, err := a.store.FindDevice(ctx, serial); err == nil && dev.Serial == serial {
		switch {
		case dev.Status == store.DeviceRevoked:
			tmpl.Status = ocsp.Revoked
			tmpl.RevokedAt = dev.RevokedAt
			tmpl.RevocationReason = int(dev.Reason)
		default:
			tmpl.Status = ocsp.Good
		}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return ocsp.CreateResponse(issuer.Cert, issuer.Cert, tmpl, issuer.Key)
}

// ocspIssuer is the trusted device intermediate the request names, or nil.
func (a *Authority) ocspIssuer(req *ocsp.Request) *DeviceCA {
	keys := a.Keys()
	for i := range keys.DeviceCAs {
		if issuedBy(req, keys.DeviceCAs[i].Cert) {
			return &keys.DeviceCAs[i]
		}
	}
	return nil
}

// issuedBy compares the request's issuer hashes with issuer's.
func issuedBy(req *ocsp.Request, issuer *x509.Certificate) bool {
	if !req.HashAlgorithm.Available() {
		return false
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(issuer.RawSubject)
	nameHash := h.Sum(nil)
	h = req.HashAlgorithm.New()
	h.Write(spki.PublicKey.RightAlign())
	keyHash := h.Sum(nil)
	return bytes.Equal(nameHash, req.IssuerNameHash) && bytes.Equal(keyHash, req.IssuerKeyHash)
}

// handleOCSP serves POST /ocsp (DER body) and GET /ocsp/<base64 request>.
func (s *Server) handleOCSP(w http.ResponseWriter, r *http.Request) {
	var raw []byte
	switch r.Method {
	case http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(r.Body, maxOCSPRequest+1))
		if err != nil || len(b) > maxOCSPRequest {
			writeOCSP(w, ocsp.MalformedRequestErrorResponse)
			return
		}
		raw = b
	case http.MethodGet:
		enc := strings.TrimPrefix(r.URL.Path, "/ocsp/")
		if unesc, err := url.PathUnescape(enc); err == nil {
			enc = unesc
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(b) > maxOCSPRequest {
			writeOCSP(w, ocsp.MalformedRequestErrorResponse)
			return
		}
		raw = b
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := ocsp.ParseRequest(raw)
	if err != nil {
		writeOCSP(w, ocsp.MalformedRequestErrorResponse)
		return
	}
	resp, err := s.ca.ocspStatus(r.Context(), req)
	if err != nil {
		s.log.Error("OCSP failed", "err", err)
		writeOCSP(w, ocsp.InternalErrorErrorResponse)
		return
	}
	writeOCSP(w, resp)
}

func writeOCSP(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
