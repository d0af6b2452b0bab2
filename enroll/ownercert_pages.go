package enroll

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/routetable"
	"github.com/devicegate/devicegate/store"
)

// ownerCertRoutes are the owner's own computers: list, quota, revoke,
// enrollment (the staff page's WebCrypto flow) and the requirement.
func (p *Portal) ownerCertRoutes(m routetable.Router) {
	m.HandleFunc("GET /owner/certs", p.owner(p.ownerCertsPage))
	m.HandleFunc("POST /owner/certs/limit", p.post(p.owner(p.setOwnerCertLimit)))
	m.HandleFunc("POST /owner/certs/required", p.post(p.owner(p.setOwnerCertRequired)))
	m.HandleFunc("POST /owner/certs/devices/{dev}/revoke", p.post(p.owner(p.revokeOwnerDevice)))
	m.HandleFunc("GET /owner/certs/enroll", p.owner(p.ownerEnrollPage))
	m.HandleFunc("POST /owner/api/enroll", p.post(p.owner(p.ownerEnrollAPI)))
}

type ownerCertsData struct {
	Required   bool
	Limit      int
	Installed  int
	Devices    []deviceRow
	Choices    []int
	ConsoleURL string
	// ThisDevice is the owner computer this request came from ("": none).
	ThisDevice string
}

var ownerCertNotices = map[string]bool{"saved": true, "revoked": true, "owner_cert_on": true, "owner_cert_off": true}

func (p *Portal) ownerCertsPage(w http.ResponseWriter, r *http.Request, s *session) {
	p.renderOwnerCerts(w, r, s, http.StatusOK, r.URL.Query().Get("ok"), "")
}

func (p *Portal) renderOwnerCerts(w http.ResponseWriter, r *http.Request, s *session, status int, notice, errKey string) {
	t, err := p.opts.Store.GetTenant(r.Context(), s.tenantID)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	d := ownerCertsData{Required: t.OwnerCertRequired, Limit: 1, Choices: []int{1, 2, 3, 4, 5}, ConsoleURL: p.opts.OwnerConsoleURL}
	owner, err := p.opts.Store.OwnerAccount(r.Context(), s.tenantID)
	switch {
	case errors.Is(err, store.ErrNotFound): // nothing enrolled yet
	case err != nil:
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	default:
		d.Limit = owner.Protection.MaxDevices
		devices, err := p.opts.Store.ListDevices(r.Context(), s.tenantID, owner.ID)
		if err != nil {
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
		now := p.opts.Now()
		for _, dev := range devices {
			row := deviceRow{Device: dev, Active: dev.ActiveAt(now), Agent: describeAgent(dev.EnrolledUA)}
			if row.Active {
				d.Installed++
			}
			d.Devices = append(d.Devices, row)
		}
	}
	if dev, refusal, err := p.ownerCertOf(r, s.tenantID); err == nil && refusal == "" {
		d.ThisDevice = dev.ID
	}
	v := view{Data: d}
	if ownerCertNotices[notice] {
		v.Notice = p.text(r, notice)
	}
	if errKey != "" {
		v.Error = p.text(r, errKey)
	}
	p.render(w, r, status, "owner_certs", v)
}

// setOwnerCertLimit chooses how many computers the owner may use (1..5),
// under the sub-accounts' rule: never below the installed ones.
func (p *Portal) setOwnerCertLimit(w http.ResponseWriter, r *http.Request, s *session) {
	n, err := strconv.Atoi(r.PostFormValue("devices"))
	if err != nil || n < 1 || n > store.MaxDevicesLimit {
		p.renderOwnerCerts(w, r, s, http.StatusBadRequest, "", "err_input")
		return
	}
	owner, err := p.opts.Store.EnsureOwnerAccount(r.Context(), s.tenantID, actor(r, s))
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	_, err = p.opts.Store.SetProtection(r.Context(), s.tenantID, owner.ID, store.Protection{Enabled: true, MaxDevices: n}, actor(r, s))
	var below *store.BelowActiveError
	switch {
	case errors.As(err, &below):
		p.renderOwnerCerts(w, r, s, http.StatusConflict, "", "err_below_active")
	case err != nil:
		p.renderOwnerCerts(w, r, s, http.StatusBadRequest, "", "err_input")
	default:
		redirect(w, "/owner/certs?ok=saved")
	}
}

// setOwnerCertRequired turns the requirement on or off with a fresh code
// from the owner's phone. On needs more: this very request must come with
// a valid owner certificate, so the owner cannot lock themselves out from
// a browser that has none.
func (p *Portal) setOwnerCertRequired(w http.ResponseWriter, r *http.Request, s *session) {
	on := r.PostFormValue("required") == "on"
	if !on && r.PostFormValue("required") != "off" {
		p.renderOwnerCerts(w, r, s, http.StatusBadRequest, "", "err_input")
		return
	}
	t, err := p.opts.Store.GetTenant(r.Context(), s.tenantID)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	ctx, now, key := r.Context(), p.opts.Now(), "owner-totp:"+s.tenantID
	if ok, _, err := p.limits.totp.Check(ctx, key, now); err != nil || !ok {
		p.renderOwnerCerts(w, r, s, http.StatusTooManyRequests, "", "err_locked")
		return
	}
	if err := p.checkTOTP(ctx, s.tenantID, "", t.OwnerTOTPSecret, strings.TrimSpace(r.PostFormValue("code"))); err != nil {
		if !codeRefused(err) {
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
		p.limits.totp.Fail(ctx, key, now)
		p.renderOwnerCerts(w, r, s, http.StatusForbidden, "", totpMessage(err))
		return
	}
	if on {
		if _, refusal, err := p.ownerCertOf(r, s.tenantID); err != nil || refusal != "" {
			p.renderOwnerCerts(w, r, s, http.StatusConflict, "", "owner_cert_on_needs_cert")
			return
		}
	}
	_, err = p.opts.Store.SetOwnerCertRequired(ctx, s.tenantID, on, now, actor(r, s))
	var ne *store.NotEligibleError
	switch {
	case errors.As(err, &ne):
		p.renderOwnerCerts(w, r, s, http.StatusConflict, "", "owner_cert_on_needs_cert")
	case err != nil:
		p.opts.Log.Error("owner certificate requirement", "err", err)
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
	case on:
		redirect(w, "/owner/certs?ok=owner_cert_on")
	default:
		redirect(w, "/owner/certs?ok=owner_cert_off")
	}
}

// revokeOwnerDevice revokes one of the owner's own computers (CRL, OCSP
// and proxies as for any device); another store's or a staff device is
// answered as not found.
func (p *Portal) revokeOwnerDevice(w http.ResponseWriter, r *http.Request, s *session) {
	owner, err := p.opts.Store.OwnerAccount(r.Context(), s.tenantID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	dev, err := p.opts.Store.GetDevice(r.Context(), s.tenantID, r.PathValue("dev"))
	if err != nil || owner.ID == "" || dev.SubID != owner.ID {
		p.notInStore(w, r, s, r.PathValue("dev"))
		return
	}
	if err := p.opts.Issuer.RevokeDevice(r.Context(), s.tenantID, dev.ID, actor(r, s)); err != nil {
		p.renderOwnerCerts(w, r, s, http.StatusConflict, "", "err_input")
		return
	}
	redirect(w, "/owner/certs?ok=revoked")
}

// ownerEnrollData is what the enrollment page needs (the staff page's
// template fields).
type ownerEnrollData struct {
	Name      string
	Installed int
	Limit     int
}

func (p *Portal) ownerEnrollPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := ownerEnrollData{Name: s.name, Limit: 1}
	owner, err := p.opts.Store.OwnerAccount(r.Context(), s.tenantID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	default:
		d.Limit = owner.Protection.MaxDevices
		if d.Installed, err = p.opts.Store.CountActiveDevices(r.Context(), s.tenantID, owner.ID, p.opts.Now()); err != nil {
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
	}
	p.render(w, r, http.StatusOK, "owner_enroll", view{Data: d})
}

// ownerEnrollAPI signs the CSR the owner's browser built for the owner
// sub-account, through the CA's quota gate (as enrollAPI does for staff).
func (p *Portal) ownerEnrollAPI(w http.ResponseWriter, r *http.Request, s *session) {
	var body api.BrowserEnrollRequest
	if !readPageJSON(w, r, &body) {
		return
	}
	owner, err := p.opts.Store.EnsureOwnerAccount(r.Context(), s.tenantID, actor(r, s))
	if err != nil {
		p.answerIssued(w, "owner enrollment", Issued{}, err)
		return
	}
	issued, err := p.opts.Issuer.Issue(r.Context(), IssueRequest{TenantID: s.tenantID, SubID: owner.ID, CSR: []byte(body.CSR),
		Label: body.Label, ClientIP: clientIP(r), UA: truncateUA(r.UserAgent())})
	p.answerIssued(w, "owner enrollment", issued, err)
}
