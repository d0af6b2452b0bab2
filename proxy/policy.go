package proxy

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/store"
)

// deviceState is what a decision needs of a device: only active devices
// are kept, so a revoked or superseded serial is simply absent.
type deviceState struct {
	tenantID, subID string
	serial          string
	expires         time.Time
}

// subState is what a decision needs of a sub-account.
type subState struct {
	tenantID  string
	fullName  string
	status    store.SubStatus
	protected bool
	limit     int // N
	window    store.Window
	perms     map[string]bool // role defaults and grants
	// notVerified: frozen for not finishing real-person verification.
	notVerified bool
}

// Snapshot is an immutable view of the policy at Seq.
type Snapshot struct {
	Seq     int64
	devices map[string]deviceState // device id -> state (active only)
	subs    map[string]subState    // sub id -> state
	active  map[string]int         // sub id -> number of active devices
}

// PolicySource is where a Policy reads changes: the store itself (SQLite
// or PostgreSQL), or the CA's policy feed for proxies without database
// access (FeedClient).
type PolicySource interface {
	PolicyChangesSince(ctx context.Context, afterSeq int64) (store.PolicyChanges, error)
}

// Policy keeps the current snapshot fresh from a source.
type Policy struct {
	st       PolicySource
	catalog  *config.Catalog
	log      *slog.Logger
	cur      atomic.Pointer[Snapshot]
	lastSync atomic.Int64 // unix nanoseconds of the last successful sync
	syncMu   sync.Mutex   // one sync at a time
	kick     chan struct{}
	file     string // persisted snapshot ("" = none)
	// snapshotsRefused counts persisted snapshots refused at load (persist.go).
	snapshotsRefused atomic.Int64
	// The snapshot file is written by Run's writer, never by a sync
	// (persist.go): toSave is the latest snapshot not yet written, save
	// wakes the writer.
	toSave    atomic.Pointer[unsaved]
	save      chan struct{}
	saveFile  func(path string, s *Snapshot, syncedAt time.Time) error // saveSnapshot
	saveEvery time.Duration                                            // snapshotSaveEvery
	saves     atomic.Int64                                             // files written
	// reporter, if set, hears the applied seq (report.go); applied wakes
	// Run's report loop after a change.
	reporter Reporter
	applied  chan struct{}
}

// NewPolicy starts with an empty snapshot that has never synced (so
// high-risk paths fail closed until the first Sync).
func NewPolicy(st PolicySource, catalog *config.Catalog, log *slog.Logger) *Policy {
	p := &Policy{st: st, catalog: catalog, log: log, kick: make(chan struct{}, 1),
		save: make(chan struct{}, 1), applied: make(chan struct{}, 1), saveFile: saveSnapshot, saveEvery: snapshotSaveEvery}
	p.cur.Store(emptySnapshot())
	return p
}

// emptySnapshot is the policy before any sync: nothing passes a high-risk path.
func emptySnapshot() *Snapshot {
	return &Snapshot{devices: map[string]deviceState{}, subs: map[string]subState{}, active: map[string]int{}}
}

// Snapshot returns the current snapshot.
func (p *Policy) Snapshot() *Snapshot { return p.cur.Load() }

// Staleness is the time since the last successful sync.
func (p *Policy) Staleness(now time.Time) time.Duration {
	last := p.lastSync.Load()
	if last == 0 {
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(time.Unix(0, last))
}

// Sync applies the store's changes since the snapshot's seq. Polling it is
// cheap when nothing changed: one read of the change sequence.
func (p *Policy) Sync(ctx context.Context) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	return p.syncLocked(ctx)
}

// syncLocked does the work of Sync; syncs never overlap, so a slower one
// cannot put back an older snapshot over a newer one.
func (p *Policy) syncLocked(ctx context.Context) error {
	cur := p.cur.Load()
	// The answer is as fresh as the question: one read before a partition
	// and delivered after it healed must not make the revocations made
	// meanwhile look applied.
	asked := time.Now()
	ch, err := p.st.PolicyChangesSince(ctx, cur.Seq)
	if err != nil {
		return err
	}
	rewound := ch.Seq < cur.Seq
	if rewound {
		// The source's change sequence went back: its database was
		// restored from a backup older than this snapshot. The snapshot's
		// devices the database no longer knows must go, and the next
		// changes reuse seq numbers the snapshot has passed (applying only
		// those above cur.Seq would skip them): load everything afresh.
		p.log.Error("the policy source's change sequence went back (database restored from a backup?): reloading the whole policy",
			"snapshot_seq", cur.Seq, "source_seq", ch.Seq)
		if ch, err = p.st.PolicyChangesSince(ctx, 0); err != nil {
			return err
		}
		cur = emptySnapshot()
	}
	if rewound || ch.Seq != cur.Seq {
		next := cur.apply(ch, p.catalog)
		p.cur.Store(next)
		p.queueSave(next, asked) // written by Run, not on this goroutine (maybe a request's)
		p.announceApplied()      // reported by Run too
	}
	p.lastSync.Store(asked.UnixNano())
	return nil
}

// apply returns a new snapshot with the changes (copy on write).
func (s *Snapshot) apply(ch store.PolicyChanges, catalog *config.Catalog) *Snapshot {
	next := &Snapshot{Seq: ch.Seq, devices: maps.Clone(s.devices), subs: maps.Clone(s.subs), active: maps.Clone(s.active)}
	for _, a := range ch.SubAccounts {
		perms := map[string]bool{}
		for _, k := range permissionsOf(a, catalog) {
			perms[k] = true
		}
		next.subs[a.ID] = subState{tenantID: a.TenantID, fullName: a.FullName(), status: a.Status,
			protected: a.Protection.Enabled, limit: a.Protection.MaxDevices, window: a.Window, perms: perms,
			notVerified: a.VerifyFrozen}
	}
	for _, d := range ch.Devices {
		if old, ok := next.devices[d.ID]; ok {
			next.active[old.subID]--
			delete(next.devices, d.ID)
		}
		if d.Status == store.DeviceActive {
			next.devices[d.ID] = deviceState{tenantID: d.TenantID, subID: d.SubID, serial: d.Serial, expires: d.ExpiresAt}
			next.active[d.SubID]++
		}
	}
	return next
}

// minOnDemandSync spaces syncs asked for by requests.
const minOnDemandSync = 50 * time.Millisecond

// SyncIfOlder syncs now unless the last sync is younger than
// minOnDemandSync: a device enrolled a moment ago passes at once instead of
// after the next poll, and a flood of refusals costs at most one cheap
// sequence read per interval.
func (p *Policy) SyncIfOlder(ctx context.Context) {
	if p.Staleness(time.Now()) < minOnDemandSync || !p.syncMu.TryLock() {
		return
	}
	defer p.syncMu.Unlock()
	if err := p.syncLocked(ctx); err != nil {
		p.log.Warn("on-demand policy sync failed", "err", err)
	}
}

// Kick asks Run to sync now: a change made in this process (a revocation
// by the in-process CA) reaches the gateway without waiting for the poll.
func (p *Policy) Kick() {
	select {
	case p.kick <- struct{}{}:
	default: // a sync is already due
	}
}

// Run syncs every interval (and when kicked) until ctx ends, then returns
// nil. A failed sync is no reason to stop: it is logged and tried again,
// and meanwhile the growing staleness makes high-risk paths fail closed.
// Run also owns the writer of the snapshot file, which writes the last
// snapshot once more before Run returns, and the reporter of the applied
// seq (ReportTo).
func (p *Policy) Run(ctx context.Context, every time.Duration) error {
	// The writer's context ends after the last sync of this loop, so that
	// sync's snapshot is in the final write.
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	written := make(chan struct{})
	go func() {
		defer close(written)
		p.saveLoop(wctx)
	}()
	defer func() {
		stopWriter()
		<-written
	}()
	if p.reporter != nil {
		rctx, stopReports := context.WithCancel(ctx)
		reported := make(chan struct{})
		go func() {
			defer close(reported)
			p.reportLoop(rctx)
		}()
		defer func() {
			stopReports()
			<-reported
		}()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.kick:
		}
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("policy sync failed", "err", err)
		}
	}
}
