package store

import "time"

// LiveHeartbeats is how many heartbeats a proxy may miss and still count
// as live: a proxy not heard from for longer has departed (stopped,
// removed, cut off) and is not waited for.
const LiveHeartbeats = 3

// MaxProxyHeartbeat bounds the heartbeat a proxy may announce.
const MaxProxyHeartbeat = time.Hour

// How a proxy gets its policy, as recorded in ProxyReport.Via.
const (
	ViaStore = "store" // reads the store itself (SQLite, PostgreSQL)
	ViaFeed  = "feed"  // the CA's policy feed, acknowledged over mTLS
)

// ProxyReport is what a proxy last said of itself: the policy seq its
// snapshot has applied, and that it is still there. A revocation with seq
// S is in force at a proxy once its Seq >= S.
type ProxyReport struct {
	Name      string        // the proxy's stable name (config proxy.name, or its certificate's)
	Seq       int64         // policy seq applied; a report never moves it back
	SeenAt    time.Time     // last report
	AppliedAt time.Time     // when Seq last advanced
	Heartbeat time.Duration // the proxy reports at least this often
	Via       string        // ViaStore or ViaFeed
}

// LiveAt reports whether the proxy was heard from within LiveHeartbeats
// heartbeats of now.
func (r ProxyReport) LiveAt(now time.Time) bool {
	return now.Sub(r.SeenAt) <= LiveHeartbeats*r.Heartbeat
}
