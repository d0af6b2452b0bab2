package ca

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/store"
)

// errProxyRefused answers a proxy certificate that the store does not
// know as active (unknown serial, revoked, expired): 403 at once.
var errProxyRefused = fmt.Errorf("proxy certificate refused: %w", store.ErrProxyInactive)

// proxyCaller accepts only callers with a proxy-role certificate of this
// CA (issued by `devicegate ca proxy-cert`) whose record in the store is
// active, and returns that record: the store, not the certificate, is
// authoritative for revocation and scope. Refusals are logged (the CA's
// own audit trail: they belong to no store). Only devicegate's programs
// call these routes, so the request must state an API version this CA
// speaks: a proxy older than versions would misread the feed.
func (s *Server) proxyCaller(r *http.Request) (store.ProxyCert, error) {
	if err := api.CheckHeader(r.Header, true); err != nil {
		return store.ProxyCert{}, err
	}
	leaf, ok := s.ca.verifiedNow(r.TLS)
	if !ok {
		return store.ProxyCert{}, errUnauthenticated
	}
	name, err := identity.ProxyFromCertificate(leaf, s.ca.opts.TrustDomain)
	if err != nil {
		return store.ProxyCert{}, fmt.Errorf("%w: %v", errUnauthenticated, err)
	}
	rec, err := s.checkProxy(r.Context(), SerialHex(leaf))
	if err == nil && (rec.Name != name || rec.Fingerprint != Fingerprint(leaf)) {
		err = errProxyRefused // a record of another certificate with this serial
	}
	if err != nil {
		s.refusedProxy(r, name, SerialHex(leaf), err)
		return store.ProxyCert{}, err
	}
	return rec, nil
}

// checkProxy reads the record of a proxy serial and wants it active now.
func (s *Server) checkProxy(ctx context.Context, serial string) (store.ProxyCert, error) {
	rec, err := s.ca.store.GetProxyCert(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, errProxyRefused
	case err != nil:
		return rec, err // fail closed: a store error refuses (500)
	case !rec.ActiveAt(s.ca.now()):
		return rec, errProxyRefused
	}
	return rec, nil
}

func (s *Server) refusedProxy(r *http.Request, name, serial string, err error) {
	s.log.Warn("proxy refused", "proxy", name, "serial", serial, "path", r.URL.Path, "client_ip", clientIP(r), "err", err)
}

// stillActive re-checks a proxy during a long poll (on every change the
// CA sees), so the open requests of a revoked proxy are cut at once.
func (s *Server) stillActive(r *http.Request, rec store.ProxyCert) error {
	if _, err := s.checkProxy(r.Context(), rec.Serial); err != nil {
		s.refusedProxy(r, rec.Name, rec.Serial, err)
		return err
	}
	return nil
}
