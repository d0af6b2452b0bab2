package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/devicegate/devicegate/internal/atomicfile"
	"github.com/devicegate/devicegate/store"
)

// The snapshot is persisted after changes and loaded at start, so a
// restarted proxy decides from what it knew. Its sync time is kept too:
// a snapshot older than max_staleness still fails closed until a sync.
// Policy.Run's writer does the writing, at most once per snapshotSaveEvery
// (the latest snapshot wins) and once more when Run ends: a sync, which
// may run on a request's goroutine, only hands the snapshot over.
//
// The file is an envelope {format, version, sha256, payload}: the SHA-256
// of the payload's exact bytes detects a truncated or damaged file, which
// is then refused, never used. A checksum is not a defence against whoever
// can write the file: they own the node (its keys and config) anyway.

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

// persistedSnapshot is the payload of the snapshot file.
type persistedSnapshot struct {
	Seq      int64
	SyncedAt time.Time
	Devices  map[string]persistedDevice
	Subs     map[string]persistedSub
}

func (s *Snapshot) persisted(syncedAt time.Time) persistedSnapshot {
	out := persistedSnapshot{Seq: s.Seq, SyncedAt: syncedAt,
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

// snapshotFile is the envelope written to disk.
type snapshotFile struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	SHA256  string          `json:"sha256"` // hex, of Payload's bytes as written
	Payload json.RawMessage `json:"payload"`
}

const (
	snapshotFormat = "devicegate-policy-snapshot"
	// snapshotVersion 2 is the checksummed envelope; version 1 files
	// (bare JSON, no checksum) are refused like damaged ones.
	snapshotVersion = 2
)

// errCorruptSnapshot marks a snapshot file that exists but cannot be
// trusted: it is refused and the proxy starts without policy.
var errCorruptSnapshot = errors.New("policy snapshot refused")

// corrupt is a refusal that names what is wrong, never the file's contents.
func corrupt(why string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorruptSnapshot, fmt.Sprintf(why, args...))
}

// encodeSnapshot is the file's bytes for s (encoding/json sorts map keys,
// so the same snapshot always gives the same payload).
func encodeSnapshot(s *Snapshot, syncedAt time.Time) ([]byte, error) {
	payload, err := json.Marshal(s.persisted(syncedAt))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	return json.Marshal(snapshotFile{Format: snapshotFormat, Version: snapshotVersion, SHA256: hex.EncodeToString(sum[:]), Payload: payload})
}

// saveSnapshot writes the snapshot atomically, readable by the owner only.
func saveSnapshot(path string, s *Snapshot, syncedAt time.Time) error {
	data, err := encodeSnapshot(s, syncedAt)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// loadSnapshot reads a persisted snapshot: nil and no error if there is no
// file; an error wrapping errCorruptSnapshot if it cannot be trusted.
func loadSnapshot(path string, now time.Time) (*Snapshot, time.Time, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	snap, syncedAt, err := decodeSnapshot(data, now)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return snap, syncedAt, nil
}

// decodeSnapshot checks the envelope, then decodes the payload. Errors say
// what is wrong without quoting the data (JSON errors would).
func decodeSnapshot(data []byte, now time.Time) (*Snapshot, time.Time, error) {
	var f snapshotFile
	if err := strictJSON(data, &f); err != nil {
		var syn *json.SyntaxError
		switch {
		case len(data) == 0:
			return nil, time.Time{}, corrupt("empty file")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, time.Time{}, corrupt("truncated (%d bytes)", len(data))
		case errors.As(err, &syn):
			return nil, time.Time{}, corrupt("not JSON (%d bytes, syntax error at offset %d)", len(data), syn.Offset)
		}
		return nil, time.Time{}, corrupt("not a snapshot envelope (%d bytes)", len(data))
	}
	if f.Format != snapshotFormat || f.Version != snapshotVersion {
		return nil, time.Time{}, corrupt("unknown format or version %d (want %d)", f.Version, snapshotVersion)
	}
	sum := sha256.Sum256(f.Payload)
	if f.SHA256 != hex.EncodeToString(sum[:]) {
		return nil, time.Time{}, corrupt("checksum mismatch (%d payload bytes)", len(f.Payload))
	}
	var p persistedSnapshot
	if err := strictJSON(f.Payload, &p); err != nil {
		return nil, time.Time{}, corrupt("payload does not decode")
	}
	switch {
	case p.Seq < 0:
		return nil, time.Time{}, corrupt("negative seq")
	case p.SyncedAt.IsZero():
		return nil, time.Time{}, corrupt("no sync time")
	case p.SyncedAt.After(now):
		// The clock went back (or the file came from elsewhere): its age
		// cannot be judged, and a future sync time would look fresh.
		return nil, time.Time{}, corrupt("sync time is in the future")
	}
	return p.snapshot(), p.SyncedAt, nil
}

// strictJSON decodes exactly one JSON value without unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// snapshotSaveEvery spaces the snapshot writes: a burst of changes (an
// enrollment wave, a mass revocation) costs one write (encode, fsync) per
// second instead of one per sync. A restart loses at most the last second
// of changes from the file, which its first sync catches up on anyway.
const snapshotSaveEvery = time.Second

// unsaved is a snapshot waiting for the writer, with its sync time.
type unsaved struct {
	s        *Snapshot
	syncedAt time.Time
}

// queueSave hands s to the writer (replacing any snapshot it has not
// written yet) without waiting.
func (p *Policy) queueSave(s *Snapshot, syncedAt time.Time) {
	if p.file == "" {
		return
	}
	p.toSave.Store(&unsaved{s: s, syncedAt: syncedAt})
	select {
	case p.save <- struct{}{}:
	default: // the writer is already woken
	}
}

// saveLoop writes the latest snapshot when one is queued, at most once
// per saveEvery, until ctx ends; then it writes the one left, if any.
func (p *Policy) saveLoop(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			p.saveLatest()
			return
		case <-p.save:
		}
		// What is queued while waiting goes into this one write.
		if wait := p.saveEvery - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		p.saveLatest()
		last = time.Now()
	}
}

// saveLatest writes the queued snapshot, if any.
func (p *Policy) saveLatest() {
	u := p.toSave.Swap(nil)
	if u == nil {
		return
	}
	if err := p.saveFile(p.file, u.s, u.syncedAt); err != nil {
		p.log.Error("saving the policy snapshot failed", "err", err)
		p.toSave.CompareAndSwap(nil, u) // tried again with the next write, unless a newer one comes
		return
	}
	p.saves.Add(1)
}

// PersistTo loads the snapshot saved at path (if any) as the starting
// point, with its original sync time (an old snapshot stays stale), and
// has Run save later changes there. A damaged file is logged (its path,
// never its contents), counted and ignored: the proxy starts without
// policy, so high-risk paths fail closed until the first sync, which
// overwrites it. A file that cannot be read at all stops start-up.
func (p *Policy) PersistTo(path string) error {
	snap, syncedAt, err := loadSnapshot(path, time.Now())
	switch {
	case errors.Is(err, errCorruptSnapshot):
		p.snapshotsRefused.Add(1)
		p.log.Error("proxy: persisted policy snapshot refused; starting without policy until the first sync", "file", path, "err", err)
	case err != nil:
		return err
	case snap != nil:
		p.cur.Store(snap)
		p.lastSync.Store(syncedAt.UnixNano())
	}
	p.file = path
	return nil
}

// SnapshotsRefused is the number of persisted snapshots refused at load.
func (p *Policy) SnapshotsRefused() int64 { return p.snapshotsRefused.Load() }
