package ca

import (
	"net/http"

	"github.com/devicegate/devicegate/api"
)

// handleProxyRenew renews the proxy certificate the caller authenticated
// with (active in the store, in the second half of its life): same name,
// same scope, a new key.
func (s *Server) handleProxyRenew(w http.ResponseWriter, r *http.Request) {
	proxy, err := s.proxyCaller(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.ProxyRenewRequest
	if err := decodeJSON(w, r, &req, maxEnrollBody); err != nil {
		s.writeError(w, r, err)
		return
	}
	chain, err := s.ca.RenewProxyCert(r.Context(), proxy, []byte(req.CSR))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var all []byte
	for _, c := range chain {
		all = append(all, pemCert(c)...)
	}
	s.log.Info("proxy certificate renewed", "proxy", proxy.Name, "old_serial", proxy.Serial, "serial", SerialHex(chain[0]))
	writeJSON(w, http.StatusCreated, api.ProxyCertificate{
		Serial:      SerialHex(chain[0]),
		NotAfter:    chain[0].NotAfter.UTC(),
		Certificate: string(pemCert(chain[0])),
		Chain:       string(all),
	})
}
