package ca

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/ratelimit"
	"github.com/devicegate/devicegate/internal/routetable"
	"github.com/devicegate/devicegate/store"
)

// maxEnrollBody bounds the JSON body of POST /v1/enroll: a maximal CSR in
// PEM plus code and label. Larger CSRs inside the limit are refused by
// ParseCSR with a clear error.
const maxEnrollBody = MaxCSRBytes*2 + 4096

// Long-poll bounds of the revocation feed.
const (
	defaultFeedWait = 25 * time.Second
	maxFeedWait     = 60 * time.Second
	feedPageSize    = 1000
)

// Server is the CA's HTTP API.
type Server struct {
	ca  *Authority
	log *slog.Logger
	mux *http.ServeMux
	// codeGuesses locks a client IP out of POST /v1/enroll after repeated
	// unknown, used or expired codes.
	codeGuesses *ratelimit.Limiter
	// parked counts the feed requests waiting for a change (tests wait
	// for it before making the change a long poll must wake up for).
	parked atomic.Int64
}

// Code-guessing bounds per client IP. A code has 160 random bits, so the
// lock does not protect codes (no rate makes guessing one feasible); it
// bounds what a flood of bad codes costs the CA. A whole office shares
// one NAT address, and ten typos, expired or reused codes there used to
// lock every colleague out; so the cap is high enough that only a flood
// reaches it (100 in 15 min, about one every 9 s). A key per (IP, code)
// would not help: a guesser sends a new code each time.
const (
	maxCodeFailures = 100
	codeLockout     = 15 * time.Minute
)

// NewServer builds the handler of the CA API.
func NewServer(a *Authority) *Server {
	s := &Server{ca: a, log: a.opts.Logger, mux: http.NewServeMux(), codeGuesses: ratelimit.New(maxCodeFailures, codeLockout)}
	s.routes(s.mux)
	return s
}

// routes is the table of the CA API (Routes lists it).
func (s *Server) routes(m routetable.Router) {
	m.HandleFunc("GET "+api.RootsPath, s.handleRoots)
	m.HandleFunc("POST "+api.EnrollPath, s.handleEnroll)
	m.HandleFunc("POST "+api.RenewPath, s.handleRenew)
	m.HandleFunc("GET "+api.RevocationsPath, s.handleRevocations)
	m.HandleFunc("GET "+api.PolicyPath, s.handlePolicy)
	m.HandleFunc("POST "+api.AuditPath, s.handleAudit)
	m.HandleFunc("POST "+api.SeenPath, s.handleSeen)
	m.HandleFunc("POST "+api.PolicyAckPath, s.handlePolicyAck)
	m.HandleFunc("POST "+api.ProxyRenewPath, s.handleProxyRenew)
	m.HandleFunc("GET /crl", s.handleCRL)
	m.HandleFunc("GET /crl.pem", s.handleCRL)
	m.HandleFunc("GET /crl/{name}", s.handleCRLOf)
	m.HandleFunc("POST /ocsp", s.handleOCSP)
	m.HandleFunc("GET /ocsp/", s.handleOCSP)
	m.HandleFunc("GET "+api.IndexPath+"{$}", s.handleIndex)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
}

// ServeHTTP states the API version on every answer (errors included).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api.SetHeader(w.Header())
	s.mux.ServeHTTP(w, r)
}

// MountACME serves the internal ACME service under /acme/.
func (s *Server) MountACME(a *ACMEServer) { s.mux.Handle("/acme/", a) }

// ConfigureTLS asks clients for a certificate of a device intermediate
// (devices renewing, proxies reading the feed) without requiring one, so
// enrollment works with a plain TLS client. The intermediates are those in
// use at each handshake (FollowDeviceCAs).
func (s *Server) ConfigureTLS(c *tls.Config) {
	c.ClientAuth = tls.VerifyClientCertIfGiven
	c.MinVersion = tls.VersionTLS12
	s.ca.FollowDeviceCAs(c)
}

func (s *Server) handleRoots(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.ca.Keys().RootPEM)
}

// handleEnroll is POST /v1/enroll: a one-time code and a CSR give a device
// certificate. A request without a version is taken as version 1.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	if err := api.CheckHeader(r.Header, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.EnrollRequest
	if err := decodeJSON(w, r, &req, maxEnrollBody); err != nil {
		s.writeError(w, r, err)
		return
	}
	ip := clientIP(r)
	if ok, wait := s.codeGuesses.Allowed(ip, s.ca.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		s.writeError(w, r, errTooManyCodes)
		return
	}
	if req.Code == "" {
		s.codeGuesses.Fail(ip, s.ca.now())
		s.writeError(w, r, store.ErrTicketUnknown)
		return
	}
	issued, err := s.ca.Issue(r.Context(), IssueRequest{
		Code:     req.Code,
		CSR:      []byte(req.CSR),
		Label:    req.Label,
		ClientIP: clientIP(r),
		UA:       r.UserAgent(),
	})
	if err != nil {
		if errors.Is(err, store.ErrTicketUnknown) || errors.Is(err, store.ErrTicketUsed) ||
			errors.Is(err, store.ErrTicketExpired) || errors.Is(err, ErrCodeMalformed) {
			s.codeGuesses.Fail(ip, s.ca.now())
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, certificateAnswer(issued))
}

// certificateAnswer is the answer to an enrollment or a renewal.
func certificateAnswer(is *Issued) api.Certificate {
	leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Chain[0].Raw})
	chain := append([]byte(nil), leaf...)
	for _, c := range is.Chain[1:] {
		chain = append(chain, pemCert(c)...)
	}
	return api.Certificate{
		DeviceID:    is.Device.ID,
		Serial:      is.Device.Serial,
		SubAccount:  is.SubAccount.FullName(),
		NotAfter:    is.Device.ExpiresAt.UTC(),
		Certificate: string(leaf),
		Chain:       string(chain),
		Installed:   is.Installed,
		Limit:       is.Limit,
	}
}

// handleRenew renews the certificate the client authenticated with. A
// request without a version is taken as version 1.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	if err := api.CheckHeader(r.Header, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	leaf, ok := s.ca.verifiedNow(r.TLS)
	if !ok {
		s.writeError(w, r, errUnauthenticated)
		return
	}
	rv, revoked := s.ca.revs.lookup(SerialHex(leaf))
	if revoked && rv.Reason != store.ReasonSuperseded {
		s.writeError(w, r, store.ErrDeviceInactive)
		return
	}
	var req api.RenewRequest
	if err := decodeJSON(w, r, &req, maxEnrollBody); err != nil {
		s.writeError(w, r, err)
		return
	}
	renew := s.ca.Renew
	if revoked { // superseded by a renewal: only its lost answer is handed out again
		renew = s.ca.RedeliverRenewal
	}
	issued, err := renew(r.Context(), leaf, []byte(req.CSR))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, certificateAnswer(issued))
}

// feedQuery reads a feed's position (since) and long-poll bound (wait).
func feedQuery(r *http.Request) (since int64, wait time.Duration, err error) {
	since, err = strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if err != nil || since < 0 {
		return 0, 0, fmt.Errorf("%w: since must be a non-negative integer", errBadRequest)
	}
	wait = defaultFeedWait
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > maxFeedWait {
			return 0, 0, fmt.Errorf("%w: wait must be a duration between 0 and %v", errBadRequest, maxFeedWait)
		}
	}
	return since, wait, nil
}

// handleRevocations is the proxies' feed: GET /v1/revocations?since=SEQ
// [&wait=25s]. It answers at once when something newer than SEQ exists and
// otherwise holds the request until the store's seq moves or wait ends.
// A proxy sees the revocations of the stores of its scope only.
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	proxy, err := s.proxyCaller(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	since, wait, err := feedQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var page api.RevocationPage
	first := true
	_, err = s.longPoll(r.Context(), wait, func(int64) (bool, error) {
		if !first { // woken by a change: the proxy may be the one revoked
			if err := s.stillActive(r, proxy); err != nil {
				return false, err
			}
		}
		first = false
		page, err = s.feedPage(r, since, proxy.Scope)
		return page.Seq > since, err
	})
	switch {
	case r.Context().Err() != nil:
	case err != nil:
		s.writeError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, page) // newer, or the wait is over
	}
}

// longPoll is the wait both feeds share: it returns as soon as ready says
// there is something newer than the caller has (true), when wait is over
// (false; at once for wait 0), or with an error when ready fails or the
// caller goes away. ready gets the CA's current change sequence.
func (s *Server) longPoll(ctx context.Context, wait time.Duration, ready func(seq int64) (bool, error)) (bool, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		seq, changed := s.ca.revs.wait()
		if newer, err := ready(seq); err != nil || newer || wait == 0 {
			return newer, err
		}
		if woken, err := s.park(ctx, changed, deadline.C); !woken {
			return false, err
		}
	}
}

// park waits until changed is closed (true), over fires (false) or ctx
// ends (its error), counted in s.parked meanwhile.
func (s *Server) park(ctx context.Context, changed <-chan struct{}, over <-chan time.Time) (bool, error) {
	s.parked.Add(1)
	defer s.parked.Add(-1)
	select {
	case <-changed:
		return true, nil
	case <-over:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// feedPage reads the store's seq before the rows, so a revocation committed
// in between is delivered next time instead of being skipped.
func (s *Server) feedPage(r *http.Request, since int64, scope store.ProxyScope) (api.RevocationPage, error) {
	cur, err := s.ca.store.CurrentSeq(r.Context())
	if err != nil {
		return api.RevocationPage{}, err
	}
	page := api.RevocationPage{Seq: max(cur, since), Revocations: []api.Revocation{}}
	if cur <= since {
		return page, nil
	}
	revs, err := s.ca.store.RevocationsSince(r.Context(), since, feedPageSize)
	if err != nil {
		return api.RevocationPage{}, err
	}
	for _, rv := range revs {
		if rv.Seq > cur {
			break
		}
		if !scope.Allows(rv.TenantID) {
			continue
		}
		page.Revocations = append(page.Revocations, api.Revocation{
			Seq: rv.Seq, Serial: rv.Serial, TenantID: rv.TenantID, SubID: rv.SubID, DeviceID: rv.DeviceID,
			Reason: int(rv.Reason), RevokedAt: rv.RevokedAt, ExpiresAt: rv.ExpiresAt,
		})
	}
	if len(revs) == feedPageSize {
		page.More = true
		page.Seq = revs[len(revs)-1].Seq
	}
	return page, nil
}

func (s *Server) handleCRL(w http.ResponseWriter, r *http.Request) {
	der, pemBytes := s.ca.CRL()
	if r.URL.Path == "/crl.pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pemBytes)
		return
	}
	if orig, ok := s.ca.CRLOf(originalDeviceName); ok {
		der = orig // the CRL its certificates name
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(der)
}

// handleCRLOf serves GET /crl/<name>: the DER CRL of one trusted device
// intermediate (the CRL Distribution Point of the certificates it issued).
// GET /crl stays the original intermediate's while it is trusted.
func (s *Server) handleCRLOf(w http.ResponseWriter, r *http.Request) {
	der, ok := s.ca.CRLOf(r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(der)
}

// decodeJSON reads one JSON object with unknown fields refused.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) { // the body's limit, not the CSR's: padding is not a CSR
			return fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, mbe.Limit)
		}
		return fmt.Errorf("%w: body is not the expected JSON object: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON object", errBadRequest)
	}
	return nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
