package ca

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// errOtherProxy refuses an acknowledgment that names a proxy other than
// the one of the client certificate: one proxy must not make another
// look up to date.
var errOtherProxy = errors.New("the acknowledgment names another proxy than the client certificate's")

// maxAckBody bounds a PolicyAck body.
const maxAckBody = 4 << 10

// handlePolicyAck records which policy seq the calling proxy has applied
// (api.PolicyAck) as the store's report of the proxy of the certificate,
// with the CA's time. A seq beyond the newest change is refused: nothing
// can have applied what does not exist yet.
func (s *Server) handlePolicyAck(w http.ResponseWriter, r *http.Request) {
	proxy, err := s.proxyCaller(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var ack api.PolicyAck
	if err := decodeJSON(w, r, &ack, maxAckBody); err != nil {
		s.writeError(w, r, err)
		return
	}
	if ack.Proxy != proxy.Name {
		s.refusedProxy(r, proxy.Name, proxy.Serial, errOtherProxy)
		s.writeError(w, r, errOtherProxy)
		return
	}
	cur, err := s.ca.store.CurrentSeq(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ack.AppliedSeq < 0 || ack.AppliedSeq > cur {
		s.writeError(w, r, fmt.Errorf("%w: applied_seq %d is not between 0 and the current seq %d", errBadRequest, ack.AppliedSeq, cur))
		return
	}
	err = s.ca.store.ReportProxy(r.Context(), store.ProxyReport{Name: proxy.Name, Seq: ack.AppliedSeq, SeenAt: s.ca.now(),
		Heartbeat: api.PolicyAckEvery, Via: store.ViaFeed})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
