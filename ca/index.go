package ca

import (
	"encoding/json"
	"net/http"

	"github.com/devicegate/devicegate/api"
)

// handleIndex is GET / (exactly): the CA's name, its root fingerprint and
// its public endpoints, so the URL the demo prints answers something useful.
func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	root := s.ca.Keys().Root
	idx := api.CAIndex{
		Service:         "devicegate CA",
		CAName:          root.Subject.CommonName,
		RootFingerprint: Fingerprint(root),
		APIVersion:      api.Version,
		Endpoints: map[string]string{
			"root_certificates": api.RootsPath,
			"enroll":            "POST " + api.EnrollPath,
			"renew":             "POST " + api.RenewPath,
			"crl_der":           "/crl",
			"crl_pem":           "/crl.pem",
			"ocsp":              "/ocsp",
			"health":            "/healthz",
		},
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(idx)
}
