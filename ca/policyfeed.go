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
// store's audit log. All need a proxy-role client certificate whose
// record in the store is active (proxyCaller), and each answers or accepts
// only the stores of that record's scope.

// policyPage is one answer of the policy feed: what changed after the
// caller's seq, complete up to Seq. Secrets never leave the CA.
type policyPage struct {
	Seq         int64              `json:"seq"`
	SubAccounts []store.SubAccount `json:"subaccounts"`
	Devices     []store.Device     `json:"devices"`
}

func (s *Server) handlePolicy(w http.ResponseWriter, r *http.Request) {
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
	first := true
	newer, err := s.longPoll(r.Context(), wait, func(seq int64) (bool, error) {
		if !first { // woken by a change: the proxy may be the one revoked
			if err := s.stillActive(r, proxy); err != nil {
				return false, err
			}
		}
		first = false
		return seq > since || since == 0, nil
	})
	if err != nil {
		if r.Context().Err() == nil {
			s.writeError(w, r, err)
		}
		return // or the proxy has gone
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
	page := policyPage{Seq: ch.Seq, SubAccounts: []store.SubAccount{}, Devices: []store.Device{}}
	for _, a := range ch.SubAccounts {
		if proxy.Scope.Allows(a.TenantID) {
			a.PasswordHash, a.TOTPSecret = "", nil
			page.SubAccounts = append(page.SubAccounts, a)
		}
	}
	for _, d := range ch.Devices {
		if proxy.Scope.Allows(d.TenantID) {
			page.Devices = append(page.Devices, d)
		}
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

var (
	errNotProxyEvent = errors.New("only proxy decisions (action proxy.*) may be uploaded")
	errOutOfScope    = errors.New("the proxy certificate does not cover this store")
)

// handleAudit appends a proxy's decisions for the stores of its scope. A
// proxy may only write what proxies write (proxy.* actions); who and when
// are the CA's to say (proxyEntry).
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	proxy, err := s.proxyCaller(r)
	if err != nil {
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
	now := s.ca.now()
	for i, rec := range up.Records {
		if !strings.HasPrefix(rec.Entry.Action, "proxy.") || rec.TenantID == "" {
			s.writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, errNotProxyEvent))
			return
		}
		if !proxy.Scope.Allows(rec.TenantID) {
			s.refusedProxy(r, proxy.Name, proxy.Serial, errOutOfScope)
			s.writeError(w, r, fmt.Errorf("%w: store %s", errOutOfScope, rec.TenantID))
			return
		}
		up.Records[i].Entry = proxyEntry(rec.Entry, proxy.Name, clientIP(r), now)
	}
	if err := s.ca.store.AppendAuditBatch(r.Context(), up.Records); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// proxyEntry replaces what a proxy says about who and when: the actor is
// the proxy of the certificate (from proxyIP), the time the CA's receive
// time. What the proxy reported is kept as details whose names say so:
// observed_at (its clock) and client_ip (the address it saw).
func proxyEntry(e store.AuditEntry, proxyName, proxyIP string, now time.Time) store.AuditEntry {
	detail := make(map[string]string, len(e.Detail)+2)
	for k, v := range e.Detail {
		detail[k] = v
	}
	delete(detail, "observed_at")
	delete(detail, "client_ip")
	if !e.Time.IsZero() {
		detail["observed_at"] = e.Time.UTC().Format(time.RFC3339Nano)
	}
	if e.Actor.IP != "" {
		detail["client_ip"] = e.Actor.IP
	}
	e.Actor = store.Actor{Kind: "proxy", Name: "proxy:" + proxyName, IP: proxyIP}
	e.Time, e.Detail = now, detail
	return e
}

// seenUpload is a proxy's POST /v1/seen: devices' last use. A reported
// "at" is accepted for compatibility and ignored: the CA's receive time
// is recorded.
type seenUpload struct {
	Devices []struct {
		TenantID string    `json:"tenant_id"`
		DeviceID string    `json:"device_id"`
		At       time.Time `json:"at"`
		IP       string    `json:"ip"`
	} `json:"devices"`
}

// handleSeen records when (the CA's time) and from where devices of the
// proxy's stores last passed it. An upload with any device out of scope
// is refused whole.
func (s *Server) handleSeen(w http.ResponseWriter, r *http.Request) {
	proxy, err := s.proxyCaller(r)
	if err != nil {
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
	for _, d := range up.Devices {
		if !proxy.Scope.Allows(d.TenantID) {
			s.refusedProxy(r, proxy.Name, proxy.Serial, errOutOfScope)
			s.writeError(w, r, fmt.Errorf("%w: store %s", errOutOfScope, d.TenantID))
			return
		}
	}
	now := s.ca.now()
	for _, d := range up.Devices {
		if err := s.ca.store.TouchDevice(r.Context(), d.TenantID, d.DeviceID, now, d.IP); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.writeError(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
