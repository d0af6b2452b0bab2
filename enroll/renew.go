package enroll

import (
	"net/http"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// renewOffered is how long before its end the portal offers a device's
// renewal, as the CA allows it (its last 30 days; earlier only once the
// owner allowed one early renewal). The CA decides; this only shows the
// button where it would agree.
const renewOffered = 30 * 24 * time.Hour

// renewable: the device is active and inside its renewal period or
// allowed an early renewal.
func renewable(dev store.Device, active bool, now time.Time) bool {
	return active && (!now.Before(dev.ExpiresAt.Add(-renewOffered)) || now.Before(dev.RenewAllowedUntil))
}

// renewPage is the enrollment page in renewal mode: a new key made in this
// browser for one of the session's own devices, which keeps its slot.
func (p *Portal) renewPage(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := p.staffData(r, s)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	for i := range d.Devices {
		if d.Devices[i].ID != r.PathValue("dev") {
			continue
		}
		if !d.Devices[i].Renewable {
			p.fail(w, r, http.StatusConflict, "err_renew_not_yet")
			return
		}
		d.Renew = &d.Devices[i]
		p.render(w, r, http.StatusOK, "staff_enroll", view{Data: d})
		return
	}
	p.notInStore(w, r, s, r.PathValue("dev"))
}

// renewAPI takes the CSR of the renewal page. Only a device of the
// session's own sub-account renews; any other id is refused as if it did
// not exist (and audited as a cross-store attempt).
func (p *Portal) renewAPI(w http.ResponseWriter, r *http.Request, s *session) {
	dev, err := p.opts.Store.GetDevice(r.Context(), s.tenantID, r.PathValue("dev"))
	if err != nil || dev.SubID != s.subID {
		p.notInStore(w, r, s, r.PathValue("dev"))
		return
	}
	var body api.RenewRequest
	if !readPageJSON(w, r, &body) {
		return
	}
	issued, err := p.opts.Issuer.Renew(r.Context(), RenewRequest{TenantID: s.tenantID, SubID: s.subID, DeviceID: dev.ID,
		CSR: []byte(body.CSR), ClientIP: clientIP(r), UA: truncateUA(r.UserAgent())})
	p.answerIssued(w, "browser renewal", issued, err)
}
