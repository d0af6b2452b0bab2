package enroll

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/devicegate/devicegate/store"
)

// A temporary sub-account (seed: customer service for a promotion) works
// inside its window only. The portal judges it by its own clock
// (Options.Now) at login and on every staff request, so access ends at the
// window's end without anyone acting; the CA caps certificates at the end
// and the proxy refuses high-risk pages after it.

// staffInWindow ends a staff session whose sub-account is outside its
// window and says why.
func (p *Portal) staffInWindow(next sessionHandler) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		sub, err := p.opts.Store.GetSubAccount(r.Context(), s.tenantID, s.subID)
		if err != nil {
			p.fail(w, r, http.StatusInternalServerError, "err_internal")
			return
		}
		if !sub.Window.Contains(p.opts.Now()) {
			p.sessions.end(w, r)
			p.audit(r, s.tenantID, store.Actor{Kind: "sub", Name: s.name}, "sub.session", s.name, "outside_window")
			p.fail(w, r, http.StatusForbidden, "err_outside_window")
			return
		}
		next(w, r, s)
	}
}

// windowForm reads the owner's from/until fields: dates (YYYY-MM-DD, in
// the portal's time zone: from starts the day, until ends it, so
// 11-01..12-21 includes 12-21). Empty from: unbounded start.
func windowForm(r *http.Request, loc *time.Location) (store.Window, error) {
	var w store.Window
	if v := r.PostFormValue("from"); v != "" {
		d, err := time.ParseInLocation(time.DateOnly, v, loc)
		if err != nil {
			return w, err
		}
		w.NotBefore = d
	}
	v := r.PostFormValue("until")
	if v == "" {
		return w, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, v, loc)
	if err != nil {
		return w, err
	}
	w.NotAfter = d.AddDate(0, 0, 1)
	if !w.NotBefore.IsZero() && !w.NotAfter.After(w.NotBefore) {
		return w, errors.New("the window ends before it starts")
	}
	return w, nil
}

// setWindow sets or extends a temporary sub-account's window (audited by
// the store as sub.validity with the old and the new end).
func (p *Portal) setWindow(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	win, err := windowForm(r, time.Local)
	if err != nil || win.NotAfter.IsZero() {
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_window", nil)
		return
	}
	if _, err := p.opts.Store.SetValidity(r.Context(), s.tenantID, sub.ID, win, actor(r, s)); err != nil {
		p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_window", nil)
		return
	}
	redirect(w, "/owner/subs/"+url.PathEscape(sub.ID)+"?ok=window_saved")
}

// lastDay is the inclusive last day of a window end (the form's "until").
func lastDay(end time.Time) string {
	if end.IsZero() {
		return ""
	}
	return end.In(time.Local).Add(-time.Nanosecond).Format(time.DateOnly)
}

func firstDay(start time.Time) string {
	if start.IsZero() {
		return ""
	}
	return start.In(time.Local).Format(time.DateOnly)
}
