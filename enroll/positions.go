package enroll

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/devicegate/devicegate/store"
)

// Positions per store (seed 002/004): each position comes with the
// catalog's default permission points; the owner may give a position this
// store's own points, and a sub-account supplementary points. High-risk
// points are marked wherever points are chosen. A change reaches every
// proxy through the policy seq the store moves.

// pointChoice is one permission point in a form, with its risk and state.
type pointChoice struct {
	Key, Name string
	High      bool
	Checked   bool
}

// positionRow is one position of the store as the positions page shows it.
type positionRow struct {
	Key, Name string
	Edited    bool // this store's points, not the catalog's defaults
	Points    []pointChoice
	HighCount int
}

func (p *Portal) pointChoices(lang string, checked []string) []pointChoice {
	var out []pointChoice
	for _, pt := range p.opts.Catalog.Points {
		out = append(out, pointChoice{Key: pt.Key, Name: names(lang, pt.Name), High: pt.Risk == "high", Checked: slices.Contains(checked, pt.Key)})
	}
	return out
}

// storePositions is every position of the catalog with this store's points.
func (p *Portal) storePositions(r *http.Request, tenantID string) ([]positionRow, error) {
	edited, err := p.opts.Store.ListPositions(r.Context(), tenantID)
	if err != nil {
		return nil, err
	}
	lang := pickLang(r)
	var out []positionRow
	for _, role := range p.opts.Catalog.Roles {
		points, isEdited := store.PositionOf(edited, role.Key, role.Permissions)
		row := positionRow{Key: role.Key, Name: names(lang, role.Name), Edited: isEdited, Points: p.pointChoices(lang, points)}
		for _, c := range row.Points {
			if c.Checked && c.High {
				row.HighCount++
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// effectivePerms are the names of what sub may use in this store.
func (p *Portal) effectivePerms(r *http.Request, sub store.SubAccount) ([]pointChoice, error) {
	edited, err := p.opts.Store.ListPositions(r.Context(), sub.TenantID)
	if err != nil {
		return nil, err
	}
	var defaults []string
	if role, ok := p.opts.Catalog.Role(sub.Role); ok {
		defaults = role.Permissions
	}
	sub.RolePoints, sub.RoleEdited = store.PositionOf(edited, sub.Role, defaults)
	var out []pointChoice
	for _, c := range p.pointChoices(pickLang(r), store.EffectivePermissions(sub, defaults)) {
		if c.Checked {
			out = append(out, c)
		}
	}
	return out, nil
}

func (p *Portal) positionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	p.renderPositions(w, r, s, http.StatusOK, r.URL.Query().Get("ok"), "")
}

func (p *Portal) renderPositions(w http.ResponseWriter, r *http.Request, s *session, status int, notice, errKey string) {
	rows, err := p.storePositions(r, s.tenantID)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "err_internal")
		return
	}
	v := view{Data: rows}
	if notice == "position_saved" {
		v.Notice = p.text(r, notice)
	}
	if errKey != "" {
		v.Error = p.text(r, errKey)
	}
	p.render(w, r, status, "owner_positions", v)
}

// editPosition saves this store's points of a position (or, with
// action=reset, goes back to the catalog's defaults).
func (p *Portal) editPosition(w http.ResponseWriter, r *http.Request, s *session) {
	role := r.PathValue("role")
	points := r.PostForm["points"]
	if err := p.opts.Catalog.ValidateGrants(role, points); err != nil {
		p.renderPositions(w, r, s, http.StatusBadRequest, "", "err_input")
		return
	}
	var err error
	if r.PostFormValue("action") == "reset" {
		err = p.opts.Store.ResetPosition(r.Context(), s.tenantID, role, actor(r, s))
		if errors.Is(err, store.ErrNotFound) {
			err = nil // already the defaults
		}
	} else {
		_, err = p.opts.Store.SetPosition(r.Context(), s.tenantID, role, points, actor(r, s))
	}
	if err != nil {
		p.opts.Log.Error("edit position failed", "err", err)
		p.renderPositions(w, r, s, http.StatusInternalServerError, "", "err_internal")
		return
	}
	redirect(w, "/owner/positions?ok=position_saved#pos-"+url.PathEscape(role))
}

// setSubRole changes a sub-account's position and supplementary points.
func (p *Portal) setSubRole(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	role, grants := r.PostFormValue("role"), r.PostForm["grants"]
	if err := p.opts.Catalog.ValidateGrants(role, grants); err != nil {
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
		return
	}
	if _, err := p.opts.Store.SetRole(r.Context(), s.tenantID, sub.ID, role, grants, actor(r, s)); err != nil {
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_input", nil)
		return
	}
	redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=saved")
}

// lifecycleData is what the sub-account page shows of its window, its
// position and its supplementary points.
type lifecycleData struct {
	Temporary   bool
	From, Until string // the window's first and last day
	Ended       bool
	Roles       []roleOption
	Grants      []pointChoice // every point, the supplementary ones checked
	Effective   []pointChoice // what the sub-account may use
	HighRisk    string        // names of the high-risk points it may use
}

func (p *Portal) lifecycleOf(r *http.Request, sub store.SubAccount) (lifecycleData, error) {
	lang := pickLang(r)
	eff, err := p.effectivePerms(r, sub)
	if err != nil {
		return lifecycleData{}, err
	}
	d := lifecycleData{Temporary: sub.Temporary(), From: firstDay(sub.Window.NotBefore), Until: lastDay(sub.Window.NotAfter),
		Ended: sub.WindowEnded(p.opts.Now()), Roles: p.roleOptions(lang), Grants: p.pointChoices(lang, sub.Grants), Effective: eff}
	var high []string
	for _, c := range eff {
		if c.High {
			high = append(high, c.Name)
		}
	}
	d.HighRisk = strings.Join(high, ", ")
	return d, nil
}
