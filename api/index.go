package api

// IndexPath is the CA's front door: what a person (or a script) opening the
// CA URL in a browser gets, instead of a 404.
const IndexPath = "/"

// CAIndex is the answer at IndexPath: which CA this is, the fingerprint to
// check its root against (devicegate enroll --fingerprint, trust install),
// and where its public endpoints are (paths on this URL).
type CAIndex struct {
	Service         string            `json:"service"` // "devicegate CA"
	CAName          string            `json:"ca_name"` // the root's common name
	RootFingerprint string            `json:"root_fingerprint_sha256"`
	APIVersion      string            `json:"api_version"`
	Endpoints       map[string]string `json:"endpoints"`
}
