package enroll

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

// An identity provider reports its decision with
//
//	POST /verify/callback
//	X-Devicegate-Signature: sha256=<hex HMAC-SHA256(key, body)>
//	{"tenant_id":…,"sub_id":…,"decision":"verified"|"rejected","reason":…,"nonce":…,"issued_at":RFC 3339}
//
// signed with the key both sides share (Options.VerifyCallbackKey). A
// result is accepted once (its nonce), within callbackSkew of issued_at,
// and only for a verification under review. See docs/verification.md.

const (
	callbackSignatureHeader = "X-Devicegate-Signature"
	maxCallbackBody         = 16 << 10
	callbackSkew            = 5 * time.Minute
)

// callbackResult is one signed decision.
type callbackResult struct {
	TenantID string    `json:"tenant_id"`
	SubID    string    `json:"sub_id"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
	Nonce    string    `json:"nonce"`
	IssuedAt time.Time `json:"issued_at"`
}

var (
	errCallbackSignature = errors.New("verification callback: missing or wrong signature")
	errCallbackBody      = errors.New("verification callback: malformed result")
)

// signCallback is the signature header value of body (for providers' and
// tests' use; the portal only checks).
func signCallback(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// parseCallback checks the signature over the raw body before reading
// anything of it, then decodes it strictly: one object, known fields only,
// every field within bounds.
func parseCallback(body []byte, signature string, key []byte) (callbackResult, error) {
	var res callbackResult
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(key) == 0 {
		return res, errCallbackSignature
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return res, errCallbackSignature
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		return callbackResult{}, errCallbackBody
	}
	if _, err := dec.Token(); err != io.EOF {
		return callbackResult{}, errCallbackBody
	}
	switch {
	case res.TenantID == "" || len(res.TenantID) > 64 || res.SubID == "" || len(res.SubID) > 64,
		res.Decision != "verified" && res.Decision != "rejected",
		res.Decision == "rejected" && (res.Reason == "" || len([]rune(res.Reason)) > 200),
		len(res.Nonce) < 16 || len(res.Nonce) > 128,
		res.IssuedAt.IsZero():
		return callbackResult{}, errCallbackBody
	}
	return res, nil
}

// verifyCallback applies a signed decision of the identity provider.
func (p *Portal) verifyCallback(w http.ResponseWriter, r *http.Request) {
	key := p.opts.VerifyCallbackKey
	if len(key) == 0 {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCallbackBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	res, err := parseCallback(body, r.Header.Get(callbackSignatureHeader), key)
	switch {
	case errors.Is(err, errCallbackSignature):
		p.opts.Log.Warn("verification callback refused", "why", "signature", "ip", clientIP(r))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	case err != nil:
		http.Error(w, "bad result", http.StatusBadRequest)
		return
	}
	now := p.opts.Now()
	if res.IssuedAt.Before(now.Add(-callbackSkew)) || res.IssuedAt.After(now.Add(callbackSkew)) {
		http.Error(w, "stale result", http.StatusBadRequest)
		return
	}
	switch err := p.opts.Store.UseNonce(r.Context(), res.Nonce, res.IssuedAt.Add(2*callbackSkew), now); {
	case errors.Is(err, store.ErrDuplicate):
		p.opts.Log.Warn("verification callback refused", "why", "replayed", "ip", clientIP(r))
		http.Error(w, "replayed result", http.StatusConflict)
		return
	case err != nil:
		p.opts.Log.Error("verification callback", "err", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	a := store.Actor{Kind: "system", Name: "verifier:" + p.verifier().Name(), IP: clientIP(r)}
	_, err = p.rules().decide(r.Context(), res.TenantID, res.SubID, res.Decision == "verified", res.Reason, a)
	if err != nil {
		status, _ := verifyErrKey(err)
		if status >= 500 {
			p.opts.Log.Error("verification callback", "err", err)
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
