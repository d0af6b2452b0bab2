package enroll

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/propagation"
	"github.com/devicegate/devicegate/internal/secrets"
	"github.com/devicegate/devicegate/store"
)

// subRow is one line of the sub-account list.
type subRow struct {
	Sub       store.SubAccount
	RoleName  string
	Installed int
	Until     string      // a temporary account's last day
	Verify    *verifyView // nil: need not verify
}

type subsData struct {
	Search   string
	Active   []subRow
	Departed []subRow
	// Expiring are the active devices whose certificates end within
	// renewOffered, soonest first.
	Expiring []expiringRow
	Roles    []roleOption
	Points   []pointOption
}

type roleOption struct {
	Key, Name string
	Defaults  []string // permission names
}

type pointOption struct {
	Key, Name string
	High      bool
}

func names(lang string, n config.Names) string {
	if lang == "zh" {
		return n.ZH
	}
	return n.EN
}

func (p *Portal) roleOptions(lang string) []roleOption {
	var out []roleOption
	for _, key := range p.opts.Catalog.RoleKeys() {
		role, _ := p.opts.Catalog.Role(key)
		o := roleOption{Key: key, Name: names(lang, role.Name)}
		for _, pk := range role.Permissions {
			if pt, ok := p.opts.Catalog.Point(pk); ok {
				o.Defaults = append(o.Defaults, names(lang, pt.Name))
			}
		}
		out = append(out, o)
	}
	return out
}

func (p *Portal) pointOptions(lang string) []pointOption {
	var out []pointOption
	for _, pt := range p.opts.Catalog.Points {
		out = append(out, pointOption{Key: pt.Key, Name: names(lang, pt.Name), High: pt.Risk == "high"})
	}
	return out
}

func (p *Portal) roleName(lang, key string) string {
	if role, ok := p.opts.Catalog.Role(key); ok {
		return names(lang, role.Name)
	}
	return key
}

func (p *Portal) subsPage(w http.ResponseWriter, r *http.Request, s *session) {
	p.renderSubs(w, r, s, http.StatusOK, "", "")
}

func (p *Portal) renderSubs(w http.ResponseWriter, r *http.Request, s *session, status int, notice, errKey string) {
	lang := pickLang(r)
	search := strings.TrimSpace(r.URL.Query().Get("q"))
	subs, err := p.opts.Store.ListSubAccounts(r.Context(), s.tenantID, store.SubAccountFilter{Search: search})
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	verifications, err := p.verifyViews(r, s.tenantID)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	now := p.opts.Now()
	d := subsData{Search: search, Roles: p.roleOptions(lang), Points: p.pointOptions(lang)}
	for _, sub := range subs {
		n, err := p.opts.Store.CountActiveDevices(r.Context(), s.tenantID, sub.ID, now)
		if err != nil {
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
		row := subRow{Sub: sub, RoleName: p.roleName(lang, sub.Role), Installed: n, Until: lastDay(sub.Window.NotAfter),
			Verify: verifications[sub.ID]}
		if sub.Status == store.StatusDeparted {
			d.Departed = append(d.Departed, row)
			continue
		}
		d.Active = append(d.Active, row)
		if n > 0 {
			soon, err := p.expiringDevices(r, sub, now)
			if err != nil {
				p.fail(w, r, http.StatusInternalServerError, "err_internal")
				return
			}
			d.Expiring = append(d.Expiring, soon...)
		}
	}
	slices.SortFunc(d.Expiring, func(a, b expiringRow) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	v := view{Data: d}
	if notice != "" {
		v.Notice = p.text(r, notice)
	}
	if errKey != "" {
		v.Error = p.text(r, errKey)
	}
	p.render(w, r, status, "owner_subs", v)
}

func (p *Portal) createSub(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	role := r.PostFormValue("role")
	grants := r.PostForm["grants"]
	if err := p.opts.Catalog.ValidateGrants(role, grants); err != nil {
		p.renderSubs(w, r, s, http.StatusBadRequest, "", "err_input")
		return
	}
	window, err := windowForm(r, time.Local) // a temporary account: from/until
	if err != nil {
		p.renderSubs(w, r, s, http.StatusBadRequest, "", "err_window")
		return
	}
	hash, err := secrets.HashPassword(r.PostFormValue("password"))
	if err != nil {
		p.renderSubs(w, r, s, http.StatusBadRequest, "", "err_input")
		return
	}
	_, err = p.opts.Store.CreateSubAccount(r.Context(), store.NewSubAccount{TenantID: s.tenantID, Name: name, Role: role,
		Grants: grants, PasswordHash: hash, Window: window,
		VerifyBy: p.opts.Now().Add(store.VerifyPeriod)}, actor(r, s))
	switch {
	case errors.Is(err, store.ErrDuplicate):
		p.renderSubs(w, r, s, http.StatusConflict, "", "err_duplicate")
	case errors.Is(err, store.ErrInvalid):
		p.renderSubs(w, r, s, http.StatusBadRequest, "", "err_input")
	case err != nil:
		p.opts.Log.Error("create sub-account failed", "err", err)
		p.renderSubs(w, r, s, http.StatusInternalServerError, "", "err_internal")
	default:
		redirect(w, "/owner/?ok=created")
	}
}

// expiringRow is a device whose certificate ends soon.
type expiringRow struct {
	Sub       store.SubAccount
	Label     string
	ExpiresAt time.Time
}

// expiringDevices lists sub's active devices that end within renewOffered.
func (p *Portal) expiringDevices(r *http.Request, sub store.SubAccount, now time.Time) ([]expiringRow, error) {
	devices, err := p.opts.Store.ListDevices(r.Context(), sub.TenantID, sub.ID)
	if err != nil {
		return nil, err
	}
	var out []expiringRow
	for _, dev := range devices {
		if dev.ActiveAt(now) && dev.ExpiresAt.Before(now.Add(renewOffered)) {
			out = append(out, expiringRow{Sub: sub, Label: dev.Label, ExpiresAt: dev.ExpiresAt})
		}
	}
	return out, nil
}

// subData is the security-settings page of one sub-account.
type subData struct {
	Sub       store.SubAccount
	RoleName  string
	Perms     []string
	Devices   []deviceRow
	Installed int
	Choices   []int // 1..5
	Phone     *totpEnrollment
	Life      lifecycleData // window, position and points (positions.go)
	Verify    *verifyView   // nil: need not verify
}

type deviceRow struct {
	store.Device
	Active bool
	Agent  string // OS / browser, from the enrollment User-Agent
	// RenewAllowed: the owner's permission for an early renewal has not ended.
	RenewAllowed bool
	// Renewable: the portal offers its renewal (see renewable).
	Renewable bool
	// Propagation of a recent revocation: "applied on 3/3 proxies", and
	// the proxies it has not reached yet ("" for other devices).
	Propagation, NotYet string
}

// propagationShown is how long after a revocation its device row says
// where it is in force.
const propagationShown = time.Hour

func (p *Portal) subFor(w http.ResponseWriter, r *http.Request, s *session) (store.SubAccount, bool) {
	sub, err := p.opts.Store.GetSubAccount(r.Context(), s.tenantID, r.PathValue("id"))
	if err == nil && sub.Owner { // the owner's own computers are at /owner/certs
		err = store.ErrNotFound
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			p.notInStore(w, r, s, r.PathValue("id"))
		} else {
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
		}
		return store.SubAccount{}, false
	}
	return sub, true
}

func (p *Portal) subPage(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	p.renderSub(w, r, sub, http.StatusOK, r.URL.Query().Get("ok"), "", nil)
}

// noticeKeys are the ?ok= values a redirect may show (nothing else is
// rendered from the query).
var noticeKeys = map[string]bool{"saved": true, "revoked": true, "created": true, "renew_allowed": true, "window_saved": true,
	"verify_decided": true, "verify_unfrozen": true, "verify_unbound": true}

func (p *Portal) renderSub(w http.ResponseWriter, r *http.Request, sub store.SubAccount, status int, notice, errKey string, phone *totpEnrollment) {
	lang := pickLang(r)
	devices, err := p.opts.Store.ListDevices(r.Context(), sub.TenantID, sub.ID)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	now := p.opts.Now()
	reports, err := p.opts.Store.ListProxyReports(r.Context())
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	d := subData{Sub: sub, RoleName: p.roleName(lang, sub.Role), Choices: []int{1, 2, 3, 4, 5}, Phone: phone}
	if d.Verify, err = p.ownerVerifyView(r, sub); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	if d.Life, err = p.lifecycleOf(r, sub); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	for _, c := range d.Life.Effective { // this store's points of the position, plus the supplementary ones
		d.Perms = append(d.Perms, c.Name)
	}
	for _, dev := range devices {
		row := deviceRow{Device: dev, Active: dev.ActiveAt(now), Agent: describeAgent(dev.EnrolledUA), RenewAllowed: now.Before(dev.RenewAllowedUntil)}
		if dev.Status == store.DeviceRevoked && now.Sub(dev.RevokedAt) < propagationShown {
			// The revocation is the device's last change: its seq.
			pr := propagation.Of(reports, dev.ChangeSeq, now)
			row.Propagation = fmt.Sprintf(p.text(r, "propagation_applied"), len(pr.Applied), pr.Total())
			if !pr.Done() {
				row.NotYet = fmt.Sprintf(p.text(r, "propagation_not_yet"), strings.Join(pr.Pending, ", "))
			}
		}
		if row.Active {
			d.Installed++
		}
		d.Devices = append(d.Devices, row)
	}
	v := view{Data: d}
	if noticeKeys[notice] {
		v.Notice = p.text(r, notice)
	}
	if errKey != "" {
		v.Error = p.text(r, errKey)
	}
	p.render(w, r, status, "owner_sub", v)
}

func (p *Portal) enablePhone(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	key, err := newTOTPKey("devicegate "+sub.TenantName, sub.FullName())
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	enrollment, err := enrollmentOf(key)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	if sub, err = p.opts.Store.EnablePhone(r.Context(), s.tenantID, sub.ID, []byte(key.Secret()), actor(r, s)); err != nil {
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
		return
	}
	// Shown in this response only: the secret is never rendered again.
	p.renderSub(w, r, sub, http.StatusOK, "saved", "", &enrollment)
}

func (p *Portal) setProtection(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	prot := store.Protection{}
	if v := r.PostFormValue("devices"); v != "off" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxDevicesLimit {
			p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
			return
		}
		prot = store.Protection{Enabled: true, MaxDevices: n}
	}
	_, err := p.opts.Store.SetProtection(r.Context(), s.tenantID, sub.ID, prot, actor(r, s))
	var below *store.BelowActiveError
	var ne *store.NotEligibleError
	switch {
	case errors.As(err, &below):
		p.renderSub(w, r, sub, http.StatusConflict, "", "err_below_active", nil)
	case errors.As(err, &ne):
		p.renderSub(w, r, sub, http.StatusConflict, "", "phone_first", nil)
	case err != nil:
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
	default:
		redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=saved")
	}
}

func (p *Portal) setStatus(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	status, ok := map[string]store.SubStatus{"depart": store.StatusDeparted, "restore": store.StatusActive,
		"freeze": store.StatusFrozen, "unfreeze": store.StatusActive}[r.PostFormValue("action")]
	if !ok {
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
		return
	}
	if err := p.opts.Issuer.SetStatus(r.Context(), s.tenantID, sub.ID, status, actor(r, s)); err != nil {
		p.opts.Log.Error("set status failed", "err", err)
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
		return
	}
	if status != store.StatusActive {
		if err := p.sessions.endAll(r.Context(), s.tenantID, sub.ID); err != nil {
			p.opts.Log.Error("end the sub-account's sessions", "err", err)
		}
	}
	redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=saved")
}

func (p *Portal) revokeAll(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	if err := p.opts.Issuer.RevokeSubAccount(r.Context(), s.tenantID, sub.ID, actor(r, s)); err != nil {
		p.opts.Log.Error("revoke all failed", "err", err)
		p.renderSub(w, r, sub, http.StatusInternalServerError, "", "err_internal", nil)
		return
	}
	redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=revoked")
}

// deviceOfSub finds the sub-account ({id}) and its device ({dev}) of the
// request in the session's store; anything else is answered as not found
// (and recorded as a cross-store attempt).
func (p *Portal) deviceOfSub(w http.ResponseWriter, r *http.Request, s *session) (store.SubAccount, store.Device, bool) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return store.SubAccount{}, store.Device{}, false
	}
	dev, err := p.opts.Store.GetDevice(r.Context(), s.tenantID, r.PathValue("dev"))
	if err != nil || dev.SubID != sub.ID {
		p.notInStore(w, r, s, r.PathValue("dev"))
		return store.SubAccount{}, store.Device{}, false
	}
	return sub, dev, true
}

func (p *Portal) ownerRevokeDevice(w http.ResponseWriter, r *http.Request, s *session) {
	sub, dev, ok := p.deviceOfSub(w, r, s)
	if !ok {
		return
	}
	if err := p.opts.Issuer.RevokeDevice(r.Context(), s.tenantID, dev.ID, actor(r, s)); err != nil {
		p.renderSub(w, r, sub, http.StatusConflict, "", "err_input", nil)
		return
	}
	redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=revoked")
}

// ownerRenewAllowance is how long the owner's permission for one early
// renewal of a device lasts (the CLI's default; store.MaxRenewAllowance at most).
const ownerRenewAllowance = 7 * 24 * time.Hour

// ownerAllowRenew lets one active device of the sub-account renew once
// before its certificate is near its end (within ownerRenewAllowance).
func (p *Portal) ownerAllowRenew(w http.ResponseWriter, r *http.Request, s *session) {
	sub, dev, ok := p.deviceOfSub(w, r, s)
	if !ok {
		return
	}
	if _, err := p.opts.Store.AllowEarlyRenewal(r.Context(), s.tenantID, dev.ID, p.opts.Now().Add(ownerRenewAllowance), actor(r, s)); err != nil {
		p.renderSub(w, r, sub, http.StatusConflict, "", "err_input", nil)
		return
	}
	redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=renew_allowed")
}

// describeAgent turns an enrollment User-Agent into "OS / browser".
func describeAgent(ua string) string {
	if ua == "" {
		return "—"
	}
	osName := "?"
	for _, c := range []struct{ needle, name string }{
		{"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Android", "Android"}, {"iPhone", "iOS"}, {"CrOS", "ChromeOS"},
		{"Linux", "Linux"}, {"devicegate-enroll", "CLI"},
	} {
		if strings.Contains(ua, c.needle) {
			osName = c.name
			break
		}
	}
	browser := "?"
	for _, c := range []struct{ needle, name string }{
		{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"devicegate-enroll", "devicegate enroll"},
	} {
		if strings.Contains(ua, c.needle) {
			browser = c.name
			break
		}
	}
	return osName + " / " + browser
}

// sortedKeys is for stable output of maps in the records view.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
