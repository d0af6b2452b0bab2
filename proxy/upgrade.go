package proxy

import (
	"net/http"
	"strings"
)

// upgradeRefused says why a request may not switch protocols or open a
// tunnel on upstream u ("" when it may go on). After a switch the gateway
// only relays bytes: an HTTP/2 connection made by an h2c upgrade would
// carry every later request, high-risk paths included, past the decision,
// and CONNECT would open a raw tunnel. So CONNECT is refused, h2c always,
// and other protocols unless the upstream lists them (WebSocket by
// default); a listed upgrade on a high-risk path still gets the full
// decision first (ServeHTTP decides before it forwards).
func upgradeRefused(r *http.Request, u *upstream) string {
	if r.Method == http.MethodConnect {
		return "tunnel_refused"
	}
	values := r.Header.Values("Upgrade")
	if len(values) == 0 {
		return ""
	}
	for _, v := range values {
		for proto := range strings.SplitSeq(v, ",") {
			proto = strings.TrimSpace(proto)
			name, _, _ := strings.Cut(proto, "/")
			if strings.EqualFold(name, "h2c") || !upgradeAllowed(u.cfg.Upgrades, proto, name) {
				return "upgrade_refused"
			}
		}
	}
	return ""
}

// upgradeAllowed: proto (as sent, maybe with a version; name without it)
// is on the list; a listed name without a version allows every version.
func upgradeAllowed(list []string, proto, name string) bool {
	for _, a := range list {
		if strings.EqualFold(a, proto) || strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}
