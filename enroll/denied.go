package enroll

import (
	"net/http"

	"github.com/devicegate/devicegate/store"
)

// notInStore answers a request naming an id that is not the session's
// store's (another store's, or none at all: the portal never looks
// outside the store to tell which) with 404, and records the attempt in
// the caller's store's chain as denied.cross_tenant with the route.
func (p *Portal) notInStore(w http.ResponseWriter, r *http.Request, s *session, id string) {
	a := actor(r, s)
	if _, err := p.opts.Store.AppendAudit(r.Context(), s.tenantID, store.AuditEntry{Time: p.opts.Now(), Actor: a,
		Action: "denied.cross_tenant", Target: id, Outcome: "denied", Detail: map[string]string{"route": r.Pattern}}); err != nil {
		p.opts.Log.Error("audit write failed", "action", "denied.cross_tenant", "err", err)
	}
	http.NotFound(w, r)
}
