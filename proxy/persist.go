package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/devicegate/devicegate/internal/atomicfile"
	"github.com/devicegate/devicegate/store"
)

// The snapshot is persisted after every change and loaded at start, so a
// restarted proxy decides from what it knew. Its sync time is kept too:
// a snapshot older than max_staleness still fails closed until a sync.

type persistedDevice struct {
	TenantID, SubID, Serial string
	Expires                 time.Time
}

type persistedSub struct {
	TenantID, FullName string
	Status             store.SubStatus
	Protected          bool
	Limit              int
	Window             store.Window
	Perms              []string
}

type persistedSnapshot struct {
	Version  int
	Seq      int64
	SyncedAt time.Time
	Devices  map[string]persistedDevice
	Subs     map[string]persistedSub
}

const snapshotVersion = 1

func (s *Snapshot) persisted(syncedAt time.Time) persistedSnapshot {
	out := persistedSnapshot{Version: snapshotVersion, Seq: s.Seq, SyncedAt: syncedAt,
		Devices: make(map[string]persistedDevice, len(s.devices)), Subs: make(map[string]persistedSub, len(s.subs))}
	for id, d := range s.devices {
		out.Devices[id] = persistedDevice{TenantID: d.tenantID, SubID: d.subID, Serial: d.serial, Expires: d.expires}
	}
	for id, sub := range s.subs {
		perms := make([]string, 0, len(sub.perms))
		for p := range sub.perms {
			perms = append(perms, p)
		}
		out.Subs[id] = persistedSub{TenantID: sub.tenantID, FullName: sub.fullName, Status: sub.status, Protected: sub.protected,
			Limit: sub.limit, Window: sub.window, Perms: perms}
	}
	return out
}

func (p persistedSnapshot) snapshot() *Snapshot {
	s := &Snapshot{Seq: p.Seq, devices: make(map[string]deviceState, len(p.Devices)), subs: make(map[string]subState, len(p.Subs)), active: map[string]int{}}
	for id, d := range p.Devices {
		s.devices[id] = deviceState{tenantID: d.TenantID, subID: d.SubID, serial: d.Serial, expires: d.Expires}
		s.active[d.SubID]++
	}
	for id, sub := range p.Subs {
		perms := make(map[string]bool, len(sub.Perms))
		for _, k := range sub.Perms {
			perms[k] = true
		}
		s.subs[id] = subState{tenantID: sub.TenantID, fullName: sub.FullName, status: sub.Status, protected: sub.Protected,
			limit: sub.Limit, window: sub.Window, perms: perms}
	}
	return s
}

// saveSnapshot writes the snapshot atomically, readable by the owner only.
func saveSnapshot(path string, s *Snapshot, syncedAt time.Time) error {
	data, err := json.Marshal(s.persisted(syncedAt))
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// loadSnapshot reads a persisted snapshot; a missing file is not an error.
func loadSnapshot(path string) (*Snapshot, time.Time, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, err
	}
	var p persistedSnapshot
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("policy snapshot %s: %w", path, err)
	}
	if p.Version != snapshotVersion {
		return nil, time.Time{}, false, fmt.Errorf("policy snapshot %s: unknown version %d", path, p.Version)
	}
	return p.snapshot(), p.SyncedAt, true, nil
}
