package enroll

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"strings"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"

	"github.com/devicegate/devicegate/internal/routetable"
	"github.com/devicegate/devicegate/store"
)

func (p *Portal) verifyRoutes(m routetable.Router) {
	m.HandleFunc("POST /owner/subs/{id}/verify/{action}", p.post(p.owner(p.ownerVerifyAction)))
	m.HandleFunc("GET /verify/{link}", p.staff(p.verifyPage))
	m.HandleFunc("POST /verify/{link}/start", p.post(p.staff(p.verifyStart)))
	m.HandleFunc("POST /verify/{link}/submit", p.post(p.staff(p.verifySubmit)))
	m.HandleFunc("POST /verify/callback", p.verifyCallback)
}

func (p *Portal) rules() verifyRules { return verifyRules{st: p.opts.Store, now: p.opts.Now} }

func (p *Portal) verifier() Verifier {
	if p.opts.Verifier != nil {
		return p.opts.Verifier
	}
	return ManualVerifier{}
}

// verifyView is a verification as the pages show it: its state's message
// key and the one deadline that matters now.
type verifyView struct {
	store.Verification
	StateKey string
	UntilKey string // "" when no deadline applies
	Until    time.Time
	URL      string       // the link (owner and its own staff only)
	QR       template.URL // owner page only
}

func verifyViewOf(v store.Verification, now time.Time, origin string) *verifyView {
	vv := &verifyView{Verification: v, StateKey: "verify_" + string(v.State), URL: origin + "/verify/" + v.Link}
	switch {
	case v.Frozen:
		vv.StateKey = "verify_frozen"
	case v.State == store.VerifyInProgress && now.Before(v.StartedAt.Add(store.VerifyAttempt)):
		vv.UntilKey, vv.Until = "verify_attempt_by", v.StartedAt.Add(store.VerifyAttempt)
	case v.State == store.VerifyUnderReview:
		vv.UntilKey, vv.Until = "verify_review_by", v.SubmittedAt.Add(store.ReviewPeriod)
	}
	if vv.UntilKey == "" && v.State.Pending() && !v.Frozen {
		vv.UntilKey, vv.Until = "verify_deadline", v.Deadline
	}
	return vv
}

// origin is this portal as the browser reached it (links and QR codes).
func origin(r *http.Request) string { return "https://" + r.Host }

// qrDataURL renders text as a PNG QR code data URL (the CSP allows data:
// images).
func qrDataURL(text string) (template.URL, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	code, err = barcode.Scale(code, 240, 240)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, code); err != nil {
		return "", err
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// ownerVerifyView is the sub-account page's verification panel (nil: the
// sub-account need not verify).
func (p *Portal) ownerVerifyView(r *http.Request, sub store.SubAccount) (*verifyView, error) {
	v, err := p.opts.Store.GetVerification(r.Context(), sub.TenantID, sub.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	vv := verifyViewOf(v, p.opts.Now(), origin(r))
	if v.State.Pending() {
		if vv.QR, err = qrDataURL(vv.URL); err != nil {
			return nil, err
		}
	}
	return vv, nil
}

// verifyViews maps sub-account ids to their verification (list page).
func (p *Portal) verifyViews(r *http.Request, tenantID string) (map[string]*verifyView, error) {
	list, err := p.opts.Store.ListVerifications(r.Context(), tenantID)
	if err != nil {
		return nil, err
	}
	now, out := p.opts.Now(), map[string]*verifyView{}
	for _, v := range list {
		out[v.SubID] = verifyViewOf(v, now, "")
	}
	return out, nil
}

// verifyErrKey is the message of a refused step.
func verifyErrKey(err error) (int, string) {
	switch {
	case errors.Is(err, errVerifyMismatch):
		return http.StatusForbidden, "err_verify_mismatch"
	case errors.Is(err, errVerifyExpired):
		return http.StatusGone, "err_verify_expired"
	case errors.Is(err, errVerifyState):
		return http.StatusConflict, "err_verify_state"
	case errors.Is(err, errVerifyInput), errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "err_verify_input"
	case errors.Is(err, store.ErrPersonBound):
		return http.StatusConflict, "err_verify_bound"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "err_verify_link"
	}
	return http.StatusInternalServerError, "err_internal"
}

func (p *Portal) ownerVerifyAction(w http.ResponseWriter, r *http.Request, s *session) {
	sub, ok := p.subFor(w, r, s)
	if !ok {
		return
	}
	var err error
	notice := "verify_decided"
	rules, a := p.rules(), actor(r, s)
	switch r.PathValue("action") {
	case "approve":
		_, err = rules.decide(r.Context(), s.tenantID, sub.ID, true, "", a)
	case "reject":
		_, err = rules.decide(r.Context(), s.tenantID, sub.ID, false, strings.TrimSpace(r.PostFormValue("reason")), a)
		if errors.Is(err, errVerifyInput) {
			p.renderSub(w, r, sub, http.StatusBadRequest, "", "err_verify_reason", nil)
			return
		}
	case "unfreeze":
		notice = "verify_unfrozen"
		_, err = rules.unfreeze(r.Context(), s.tenantID, sub.ID, a)
	case "unbind":
		notice = "verify_unbound"
		_, err = rules.unbind(r.Context(), s.tenantID, sub.ID, a)
	default:
		p.renderSub(w, r, sub, http.StatusNotFound, "", "err_input", nil)
		return
	}
	if err != nil {
		status, key := verifyErrKey(err)
		if status >= 500 {
			p.opts.Log.Error("verification step failed", "err", err)
		}
		p.renderSub(w, r, sub, status, "", key, nil)
		return
	}
	redirect(w, "/owner/subs/"+sub.ID+"?ok="+notice)
}

// verifyFor resolves the link of the request for the logged-in staff
// member: an unknown link, or one of another sub-account (of this or
// another store: "account mismatch"), is refused and audited in the
// staff member's own store.
func (p *Portal) verifyFor(w http.ResponseWriter, r *http.Request, s *session) (store.Verification, bool) {
	sum := sha256.Sum256([]byte(r.PathValue("link")))
	v, err := p.opts.Store.VerificationByLink(r.Context(), sum[:])
	if err == nil {
		err = p.rules().open(v, s.tenantID, s.subID)
	}
	if err != nil {
		status, key := verifyErrKey(err)
		if status < 500 {
			p.audit(r, s.tenantID, actor(r, s), "verify.open", s.name, strings.TrimPrefix(key, "err_verify_"))
		} else {
			p.opts.Log.Error("verification link", "err", err)
		}
		p.fail(w, r, status, key)
		return store.Verification{}, false
	}
	return v, true
}

type verifyPageData struct {
	V    *verifyView
	Link string
	Form bool // the attempt is running: show the form
}

func (p *Portal) renderVerify(w http.ResponseWriter, r *http.Request, status int, v store.Verification, notice, errKey string) {
	now := p.opts.Now()
	d := verifyPageData{V: verifyViewOf(v, now, ""), Link: v.Link,
		Form: v.State == store.VerifyInProgress && now.Before(v.StartedAt.Add(store.VerifyAttempt))}
	vw := view{Data: d}
	if notice != "" {
		vw.Notice = p.text(r, notice)
	}
	if errKey != "" {
		vw.Error = p.text(r, errKey)
	}
	p.render(w, r, status, "verify", vw)
}

func (p *Portal) verifyPage(w http.ResponseWriter, r *http.Request, s *session) {
	if v, ok := p.verifyFor(w, r, s); ok {
		p.renderVerify(w, r, http.StatusOK, v, "", "")
	}
}

func (p *Portal) verifyStart(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := p.verifyFor(w, r, s)
	if !ok {
		return
	}
	started, err := p.rules().start(r.Context(), v, actor(r, s))
	if err != nil {
		status, key := verifyErrKey(err)
		p.renderVerify(w, r, status, v, "", key)
		return
	}
	p.renderVerify(w, r, http.StatusOK, started, "", "")
}

func (p *Portal) verifySubmit(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := p.verifyFor(w, r, s)
	if !ok {
		return
	}
	person := store.Person{IDNumber: r.PostFormValue("id_number"), Phone: r.PostFormValue("phone")}
	done, err := p.rules().submit(r.Context(), v, strings.TrimSpace(r.PostFormValue("holder")), person, p.verifier(), actor(r, s))
	switch {
	case errors.Is(err, errVerifyExpired):
		p.audit(r, s.tenantID, actor(r, s), "verify.submit", s.name, "expired")
		p.renderVerify(w, r, http.StatusGone, v, "", "err_verify_expired")
	case errors.Is(err, store.ErrPersonBound):
		p.audit(r, s.tenantID, actor(r, s), "verify.submit", s.name, "person_bound")
		p.renderVerify(w, r, http.StatusConflict, v, "", "err_verify_bound")
	case err != nil && done.State == store.VerifyUnderReview:
		// Stored, but the verifier was not told: the owner can still decide.
		p.opts.Log.Error("verifier", "err", err)
		p.renderVerify(w, r, http.StatusOK, done, "verify_submitted", "")
	case err != nil:
		status, key := verifyErrKey(err)
		p.renderVerify(w, r, status, v, "", key)
	default:
		p.renderVerify(w, r, http.StatusOK, done, "verify_submitted", "")
	}
}

// staffVerifyView is the staff home's banner (nil: nothing to do).
func (p *Portal) staffVerifyView(r *http.Request, tenantID, subID string) (*verifyView, error) {
	v, err := p.opts.Store.GetVerification(r.Context(), tenantID, subID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return verifyViewOf(v, p.opts.Now(), ""), nil
}
