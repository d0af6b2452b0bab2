package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// WhoamiPath answers, over mTLS, who the presented certificate speaks for
// and whether it would pass (the portal's "check installation").
const WhoamiPath = "/.well-known/devicegate/whoami"

type whoamiAnswer struct {
	Certificate bool   `json:"certificate"`
	Status      string `json:"status"` // "ok" or a reason code
	SubAccount  string `json:"subaccount,omitempty"`
	DeviceID    string `json:"device_id,omitempty"`
	NotAfter    string `json:"not_after,omitempty"`
	Installed   int    `json:"installed,omitempty"`
	Limit       int    `json:"limit,omitempty"`
}

// serveWhoami reports the certificate's standing from the snapshot. It
// needs no app session and reveals nothing but the caller's own identity.
func (g *Gateway) serveWhoami(w http.ResponseWriter, r *http.Request) {
	if origin := g.portalOrigin(); origin != "" && r.Header.Get("Origin") == origin {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Vary", "Origin")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	ans := whoamiAnswer{Status: ReasonNoCertificate.String()}
	if leaf := peerLeaf(r); leaf != nil {
		ans.Certificate = true
		ans.NotAfter = leaf.NotAfter.UTC().Format(time.RFC3339)
		grant, reason, snap := g.identifyFresh(r.Context(), newPeer(leaf, g.opts.TrustDomain))
		ans.Status = reason.String()
		if reason.Allowed() {
			sub := snap.subs[grant.Principal.SubID]
			ans.SubAccount, ans.DeviceID = grant.SubName, grant.Principal.DeviceID
			ans.Installed, ans.Limit = snap.active[grant.Principal.SubID], sub.limit
		}
	}
	_ = json.NewEncoder(w).Encode(ans)
}

// portalOrigin is the origin of the enrollment portal (allowed to read
// whoami from the browser).
func (g *Gateway) portalOrigin() string {
	u, err := url.Parse(g.opts.EnrollURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
