package api

import "time"

// Enrollment: a device makes its key, sends a CSR with a one-time code and
// gets its certificate (POST /v1/enroll, plain TLS); later it renews over
// mTLS with the current certificate (POST /v1/renew). Both answer 201 with
// a Certificate. These routes accept a request without VersionHeader as
// version 1 (scripts and older CLIs); the CA answers with it.
const (
	EnrollPath = "/v1/enroll"
	RenewPath  = "/v1/renew"
	RootsPath  = "/v1/roots.pem" // the CA's root certificates (PEM), fetched once to check a fingerprint
)

// EnrollRequest is the body of POST /v1/enroll. The code names the
// sub-account; the CSR only carries the key (its subject is ignored).
type EnrollRequest struct {
	Code  string `json:"code"`
	CSR   string `json:"csr"`   // PEM PKCS#10
	Label string `json:"label"` // shown to the owner, e.g. "front desk PC"
}

// RenewRequest is the body of POST /v1/renew: a CSR for the new key. The
// client certificate names the device; the body names nothing else.
type RenewRequest struct {
	CSR string `json:"csr"` // PEM PKCS#10
}

// Certificate is the CA's answer to an enrollment or a renewal.
type Certificate struct {
	DeviceID    string    `json:"device_id"`
	Serial      string    `json:"serial"`     // lower-case hex
	SubAccount  string    `json:"subaccount"` // "store:name"
	NotAfter    time.Time `json:"not_after"`
	Certificate string    `json:"certificate"` // PEM leaf
	Chain       string    `json:"chain"`       // PEM leaf and intermediates
	Installed   int       `json:"installed"`   // active devices of the sub-account, this one included
	Limit       int       `json:"limit"`       // N of the certificate protection
}

// BrowserEnrollPath is the portal's enrollment of a signed-in staff
// member's browser: the browser makes the key and the CSR, the session
// names the sub-account (CSRF token in X-CSRF-Token). It answers 200 with
// a BrowserCertificate.
const BrowserEnrollPath = "/staff/api/enroll"

// BrowserEnrollRequest is the body of POST /staff/api/enroll.
type BrowserEnrollRequest struct {
	CSR   string `json:"csr"` // PEM PKCS#10 built in the browser
	Label string `json:"label"`
}

// BrowserCertificate is what the browser needs to pack its PKCS#12.
type BrowserCertificate struct {
	Certificate string   `json:"certificate"` // PEM leaf
	Chain       []string `json:"chain"`       // PEM intermediates, leaf excluded
	DeviceID    string   `json:"device_id"`
	Serial      string   `json:"serial"`
	Installed   int      `json:"installed"`
	Limit       int      `json:"limit"`
}
