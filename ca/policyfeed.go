package ca

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

// The policy feed lets proxies that hold no database credentials keep
// their snapshot: GET /v1/policy?since=N&wait=D answers the sub-accounts
// and devices changed after seq N (long-polling up to D while nothing
// changed), and POST /v1/audit takes their batched decisions into the
// store's audit log. Both need a proxy-role client certificate.

// policyPage is one answer of the policy feed: what changed after the
// caller's seq, complete up to Seq. Secrets never leave the CA.
type policyPage struct {
	Seq         int64              `json:"seq"`
	SubAccounts []store.SubAccount `json:"subaccounts"`
	Devices     []store.Device     `json:"devices"`
}

func (s *Server) handlePolicy(w http.ResponseWriter, r *http.Request) {
	if err := s.proxyCaller(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	since, wait, err := feedQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	newer, err := s.longPoll(r.Context(), wait, func(seq int64) (bool, error) { return seq > since || since == 0, nil })
	if err != nil {
		return // the proxy has gone
	}
	if !newer && wait > 0 {
		writeJSON(w, http.StatusOK, policyPage{Seq: since, SubAccounts: []store.SubAccount{}, Devices: []store.Device{}})
		return
	}
	ch, err := s.ca.store.PolicyChangesSince(r.Context(), since)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := policyPage{Seq: ch.Seq, SubAccounts: ch.SubAccounts, Devices: ch.Devices}
	for i := range page.SubAccounts {
		page.SubAccounts[i].PasswordHash, page.SubAccounts[i].TOTPSecret = "", nil
	}
	if page.SubAccounts == nil {
		page.SubAccounts = []store.SubAccount{}
	}
	if page.Devices == nil {
		page.Devices = []store.Device{}
	}
	writeJSON(w, http.StatusOK, page)
}

// AuditUpload is a proxy's batch for POST /v1/audit.
type AuditUpload struct {
	Records []store.AuditRecord `json:"records"`
}

// Bounds of one audit upload.
const (
	maxAuditUploadBytes   = 4 << 20
	maxAuditUploadRecords = 4096
)

var errNotProxyEvent = errors.New("only proxy decisions (actor kind proxy, action proxy.*) may be uploaded")

// handleAudit appends a proxy's decisions. A proxy may only write what
// proxies write: its own kind of actor and proxy.* actions.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	if err := s.proxyCaller(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var up AuditUpload
	if err := decodeJSON(w, r, &up, maxAuditUploadBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(up.Records) == 0 || len(up.Records) > maxAuditUploadRecords {
		s.writeError(w, r, fmt.Errorf("%w: 1..%d records per upload", errBadRequest, maxAuditUploadRecords))
		return
	}
	for _, rec := range up.Records {
		if rec.Entry.Actor.Kind != "proxy" || !strings.HasPrefix(rec.Entry.Action, "proxy.") || rec.TenantID == "" {
			s.writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, errNotProxyEvent))
			return
		}
	}
	if err := s.ca.store.AppendAuditBatch(r.Context(), up.Records); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// seenUpload is a proxy's POST /v1/seen: devices' last use.
type seenUpload struct {
	Devices []struct {
		TenantID string    `json:"tenant_id"`
		DeviceID string    `json:"device_id"`
		At       time.Time `json:"at"`
		IP       string    `json:"ip"`
	} `json:"devices"`
}

// handleSeen records when and from where devices last passed a proxy.
func (s *Server) handleSeen(w http.ResponseWriter, r *http.Request) {
	if err := s.proxyCaller(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var up seenUpload
	if err := decodeJSON(w, r, &up, maxAuditUploadBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(up.Devices) == 0 || len(up.Devices) > maxAuditUploadRecords {
		s.writeError(w, r, fmt.Errorf("%w: 1..%d devices per upload", errBadRequest, maxAuditUploadRecords))
		return
	}
	now := s.ca.now()
	for _, d := range up.Devices {
		if d.At.After(now.Add(time.Minute)) {
			d.At = now // a proxy's clock ahead of ours does not write the future
		}
		if err := s.ca.store.TouchDevice(r.Context(), d.TenantID, d.DeviceID, d.At, d.IP); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.writeError(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
