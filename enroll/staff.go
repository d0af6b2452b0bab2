package enroll

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

type staffData struct {
	Sub       store.SubAccount
	Devices   []deviceRow
	Installed int
	// Renew is the device the enrollment page renews (nil: a new device).
	Renew  *deviceRow
	Verify *verifyView // nil: need not verify
}

func (p *Portal) staffData(r *http.Request, s *session) (staffData, error) {
	sub, err := p.opts.Store.GetSubAccount(r.Context(), s.tenantID, s.subID)
	if err != nil {
		return staffData{}, err
	}
	devices, err := p.opts.Store.ListDevices(r.Context(), s.tenantID, s.subID)
	if err != nil {
		return staffData{}, err
	}
	d := staffData{Sub: sub}
	if d.Verify, err = p.staffVerifyView(r, s.tenantID, s.subID); err != nil {
		return staffData{}, err
	}
	now := p.opts.Now()
	for _, dev := range devices {
		row := deviceRow{Device: dev, Active: dev.ActiveAt(now), Agent: describeAgent(dev.EnrolledUA)}
		row.Renewable = renewable(dev, row.Active, now)
		if row.Active {
			d.Installed++
		}
		d.Devices = append(d.Devices, row)
	}
	return d, nil
}

func (p *Portal) staffHome(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := p.staffData(r, s)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	v := view{Data: d}
	if noticeKeys[r.URL.Query().Get("ok")] {
		v.Notice = p.text(r, r.URL.Query().Get("ok"))
	}
	p.render(w, r, http.StatusOK, "staff_home", v)
}

func (p *Portal) enrollPage(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := p.staffData(r, s)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	p.render(w, r, http.StatusOK, "staff_enroll", view{Data: d})
}

// writeJSON answers the enrollment API, stating its version.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	api.SetHeader(w.Header())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers the enrollment API with an error in both languages
// (as the CA's own API answers).
func writeError(w http.ResponseWriter, status int, code, en, zh string) {
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: en, MessageZH: zh}})
}

// enrollAPI takes the CSR the browser built (its key never leaves the
// browser) and signs it for the session's sub-account through the CA's
// quota gate: the same code path as POST /v1/enroll, without a code
// because the session already proves who is asking.
func (p *Portal) enrollAPI(w http.ResponseWriter, r *http.Request, s *session) {
	var body api.BrowserEnrollRequest
	if !readPageJSON(w, r, &body) {
		return
	}
	issued, err := p.opts.Issuer.Issue(r.Context(), IssueRequest{TenantID: s.tenantID, SubID: s.subID, CSR: []byte(body.CSR),
		Label: body.Label, ClientIP: clientIP(r), UA: truncateUA(r.UserAgent())})
	p.answerIssued(w, "browser enrollment", issued, err)
}

// readPageJSON decodes the page script's JSON body (bounded, no unknown
// field) into v; on a bad body it answers the error and returns false.
func readPageJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "invalid", "JSON body required", "需要 JSON 请求体")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxCSRBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request too large", "请求过大")
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid", "malformed JSON", "请求格式错误")
		return false
	}
	return true
}

// answerIssued answers the page script with the certificate, or with the
// CA's refusal in both languages (an internal error is logged, not shown).
func (p *Portal) answerIssued(w http.ResponseWriter, what string, issued Issued, err error) {
	var refusal *api.Error
	switch {
	case errors.As(err, &refusal):
		writeError(w, refusal.Status, refusal.Code, refusal.Message, refusal.MessageZH)
	case err != nil:
		p.opts.Log.Error(what+" failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "内部错误")
	default:
		writeJSON(w, http.StatusOK, api.BrowserCertificate{Certificate: issued.CertPEM, Chain: issued.ChainPEM, DeviceID: issued.Device.ID,
			Serial: issued.Device.Serial, Installed: issued.Installed, Limit: issued.Limit})
	}
}

func (p *Portal) staffRevokeDevice(w http.ResponseWriter, r *http.Request, s *session) {
	dev, err := p.opts.Store.GetDevice(r.Context(), s.tenantID, r.PathValue("dev"))
	if err != nil || dev.SubID != s.subID {
		p.notInStore(w, r, s, r.PathValue("dev"))
		return
	}
	if err := p.opts.Issuer.RevokeDevice(r.Context(), s.tenantID, dev.ID, actor(r, s)); err != nil {
		p.fail(w, r, http.StatusConflict, "err_input")
		return
	}
	redirect(w, "/staff/?ok=revoked")
}
