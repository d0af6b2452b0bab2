package api

import "time"

// ProxyRenewPath is where a feed proxy renews its own certificate, over
// mTLS with the current one (VersionHeader required): same name and store
// scope, a new key. It answers 201 with a ProxyCertificate.
const ProxyRenewPath = "/v1/proxy/renew"

// ProxyRenewRequest is the body of POST /v1/proxy/renew.
type ProxyRenewRequest struct {
	CSR string `json:"csr"` // PEM PKCS#10 of the new key
}

// ProxyCertificate is the renewed proxy certificate.
type ProxyCertificate struct {
	Serial      string    `json:"serial"` // lower-case hex
	NotAfter    time.Time `json:"not_after"`
	Certificate string    `json:"certificate"` // PEM leaf
	Chain       string    `json:"chain"`       // PEM leaf and intermediate
}
