package ca

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// The policy feed lets proxies that hold no database credentials keep
// their snapshot: GET /v1/policy?since=N&wait=D answers the sub-accounts
// and devices changed after seq N (long-polling up to D while nothing
// changed), and POST /v1/audit takes their batched decisions into the
// store's audit log. All need a proxy-role client certificate whose
// record in the store is active (proxyCaller), and each answers or accepts
// only the stores of that record's scope. The bodies are api's (feed.go,
// upload.go).

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
		writeJSON(w, http.StatusOK, api.PolicyPage{Seq: since, SubAccounts: []api.PolicySubAccount{}, Devices: []api.PolicyDevice{}})
		return
	}
	ch, err := s.ca.store.PolicyChangesSince(r.Context(), since)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := api.PolicyPage{Seq: ch.Seq, SubAccounts: []api.PolicySubAccount{}, Devices: []api.PolicyDevice{}}
	for _, a := range ch.SubAccounts {
		if proxy.Scope.Allows(a.TenantID) {
			page.SubAccounts = append(page.SubAccounts, policySubAccount(a))
		}
	}
	for _, d := range ch.Devices {
		if proxy.Scope.Allows(d.TenantID) {
			page.Devices = append(page.Devices, policyDevice(d))
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// policySubAccount is what the feed tells of a sub-account: what a
// proxy's decision reads, nothing else (no secrets, phone or times).
func policySubAccount(a store.SubAccount) api.PolicySubAccount {
	return api.PolicySubAccount{TenantID: a.TenantID, ID: a.ID, FullName: a.FullName(), Status: string(a.Status),
		Role: a.Role, RoleEdited: a.RoleEdited, RolePoints: a.RolePoints, Grants: a.Grants, Protection: api.Protection{Enabled: a.Protection.Enabled, MaxDevices: a.Protection.MaxDevices},
		Window: api.Window{NotBefore: a.Window.NotBefore, NotAfter: a.Window.NotAfter}, NotVerified: a.VerifyFrozen}
}

// policyDevice is what the feed tells of a device: no label, enrollment
// address, user agent, fingerprint or last use.
func policyDevice(d store.Device) api.PolicyDevice {
	return api.PolicyDevice{ID: d.ID, TenantID: d.TenantID, SubID: d.SubID, Serial: d.Serial, Status: string(d.Status), ExpiresAt: d.ExpiresAt}
}

var (
	errNotProxyEvent = errors.New("only proxy decisions (action proxy.*) may be uploaded")
	errOutOfScope    = errors.New("the proxy certificate does not cover this store")
)

// handleAudit appends a proxy's decisions for the stores of its scope. A
// proxy may only write what proxies write (proxy.* actions); who and when
// are the CA's to say (proxyRecord).
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	proxy, err := s.proxyCaller(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var up api.AuditUpload
	if err := decodeJSON(w, r, &up, api.MaxUploadBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(up.Records) == 0 || len(up.Records) > api.MaxUploadItems {
		s.writeError(w, r, fmt.Errorf("%w: 1..%d records per upload", errBadRequest, api.MaxUploadItems))
		return
	}
	now := s.ca.now()
	records := make([]store.AuditRecord, len(up.Records))
	for i, rec := range up.Records {
		if !strings.HasPrefix(rec.Action, "proxy.") || rec.TenantID == "" {
			s.writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, errNotProxyEvent))
			return
		}
		if !proxy.Scope.Allows(rec.TenantID) {
			s.refusedProxy(r, proxy.Name, proxy.Serial, errOutOfScope)
			s.writeError(w, r, fmt.Errorf("%w: store %s", errOutOfScope, rec.TenantID))
			return
		}
		records[i] = proxyRecord(rec, proxy.Name, clientIP(r), now)
	}
	if err := s.ca.store.AppendAuditBatch(r.Context(), records); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// proxyRecord is an uploaded decision as the store keeps it. Who and when
// are the CA's to say: the actor is the proxy of the certificate (from
// proxyIP), the time the CA's receive time. What the proxy reported is
// kept as details whose names say so: observed_at (its clock) and
// client_ip (the address it saw).
func proxyRecord(rec api.AuditRecord, proxyName, proxyIP string, now time.Time) store.AuditRecord {
	detail := make(map[string]string, len(rec.Detail)+2)
	for k, v := range rec.Detail {
		detail[k] = v
	}
	delete(detail, "observed_at")
	delete(detail, "client_ip")
	if !rec.Time.IsZero() {
		detail["observed_at"] = rec.Time.UTC().Format(time.RFC3339Nano)
	}
	if rec.ClientIP != "" {
		detail["client_ip"] = rec.ClientIP
	}
	return store.AuditRecord{TenantID: rec.TenantID, Entry: store.AuditEntry{
		Time:    now,
		Actor:   store.Actor{Kind: "proxy", Name: "proxy:" + proxyName, IP: proxyIP},
		Action:  rec.Action,
		Target:  rec.Target,
		Outcome: rec.Outcome,
		Detail:  detail,
	}}
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
	var up api.SeenUpload
	if err := decodeJSON(w, r, &up, api.MaxUploadBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(up.Devices) == 0 || len(up.Devices) > api.MaxUploadItems {
		s.writeError(w, r, fmt.Errorf("%w: 1..%d devices per upload", errBadRequest, api.MaxUploadItems))
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
