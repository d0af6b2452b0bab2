package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
)

// downSource is a policy source that never answers: the proxy decides from
// what it loaded, or from nothing.
type downSource struct{}

func (downSource) PolicyChangesSince(context.Context, int64) (store.PolicyChanges, error) {
	return store.PolicyChanges{}, errors.New("source down")
}

func testSnapshot() *Snapshot {
	return &Snapshot{Seq: 42,
		devices: map[string]deviceState{
			"d1": {tenantID: "t1", subID: "s1", serial: "0a1b2c3d4e5f", expires: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)},
			"d2": {tenantID: "t1", subID: "s1", serial: "ffee", expires: time.Date(2027, 2, 2, 3, 4, 5, 0, time.UTC)},
		},
		subs: map[string]subState{
			"s1": {tenantID: "t1", fullName: "shop:alice", status: store.StatusActive, protected: true, limit: 2,
				perms: map[string]bool{"orders.sold": true, "shipping": true}},
		},
		active: map[string]int{"s1": 2},
	}
}

func TestSnapshotFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.json")
	synced := time.Now().Add(-time.Hour).Round(0)
	want := testSnapshot()
	if err := saveSnapshot(path, want, synced); err != nil {
		t.Fatal(err)
	}
	got, gotSynced, err := loadSnapshot(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !gotSynced.Equal(synced) {
		t.Fatalf("synced at %v, want %v", gotSynced, synced)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	// No file is not an error: a first start.
	if s, _, err := loadSnapshot(filepath.Join(t.TempDir(), "none"), time.Now()); s != nil || err != nil {
		t.Fatalf("missing file: %v %v", s, err)
	}
}

// corruptions are damaged versions of a valid snapshot file, each one a
// way a disk, a crash or a hand edit can leave it.
func corruptions(t testing.TB, valid []byte, serial string) map[string][]byte {
	if !bytes.Contains(valid, []byte(serial)) {
		t.Fatalf("serial %s not in the file", serial)
	}
	var f snapshotFile
	if err := json.Unmarshal(valid, &f); err != nil {
		t.Fatal(err)
	}
	reenvelope := func(change func(*snapshotFile)) []byte {
		g := f
		change(&g)
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withSum := func(payload []byte) func(*snapshotFile) {
		return func(g *snapshotFile) {
			sum := sha256.Sum256(payload)
			g.Payload, g.SHA256 = payload, hex.EncodeToString(sum[:])
		}
	}
	payloadAt := bytes.Index(valid, []byte(`"payload":`)) + len(`"payload":`)
	flipped := bytes.Clone(valid)
	flipped[payloadAt+len(f.Payload)/2] ^= 0x01
	var p persistedSnapshot
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	p.SyncedAt = time.Now().AddDate(1, 0, 0)
	future, _ := json.Marshal(p)
	var legacy map[string]any
	_ = json.Unmarshal(f.Payload, &legacy)
	legacy["Version"] = 1
	v1, _ := json.Marshal(legacy) // the format before the checksum
	return map[string][]byte{
		"empty file":                  {},
		"truncated after 1 byte":      valid[:1],
		"truncated in the envelope":   valid[:20],
		"truncated in the payload":    valid[:payloadAt+len(f.Payload)/2],
		"truncated by one byte":       valid[:len(valid)-1],
		"a payload byte flipped":      flipped,
		"serial edited, old checksum": bytes.Replace(valid, []byte(serial), []byte(strings.Repeat("0", len(serial))), 1),
		"checksum of another payload": reenvelope(func(g *snapshotFile) { g.SHA256 = strings.Repeat("0", 64) }),
		"no checksum":                 reenvelope(func(g *snapshotFile) { g.SHA256 = "" }),
		"version mismatch":            reenvelope(func(g *snapshotFile) { g.Version = 3 }),
		"other format":                reenvelope(func(g *snapshotFile) { g.Format = "x" }),
		"version 1 (no envelope)":     v1,
		"garbage":                     []byte("\x00\xffnot a snapshot at all"),
		"trailing data":               append(bytes.Clone(valid), []byte(`{"seq":1}`)...),
		"payload not a snapshot":      reenvelope(withSum([]byte(`{"Seq":"x"}`))),
		"unknown payload field":       reenvelope(withSum([]byte(`{"Seq":1,"SyncedAt":"2026-01-01T00:00:00Z","Extra":1}`))),
		"negative seq":                reenvelope(withSum([]byte(`{"Seq":-1,"SyncedAt":"2026-01-01T00:00:00Z"}`))),
		"no sync time":                reenvelope(withSum([]byte(`{"Seq":1}`))),
		"sync time in the future":     reenvelope(withSum(future)),
	}
}

// gatewayOn serves a second gateway like e's, deciding from policy.
func gatewayOn(t *testing.T, e *env, opts Options, policy *Policy) string {
	opts.Policy = policy
	gw, err := NewGateway(opts)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{e.pki.ServerCert(t, "localhost", "127.0.0.1")}, NextProtos: []string{"h2", "http/1.1"}}
	ConfigureTLS(tc, poolOf(e.pki.Intermediate), nil)
	_, url := serveGateway(t, gw, tc)
	return url
}

// A damaged snapshot file is refused, logged by path without its
// contents, counted, and the proxy starts without policy: a high-risk path
// answers 503 policy_stale, not a decision from the damaged data. The same
// file intact lets the request through.
func TestSnapshotCorruptRefused(t *testing.T) {
	var opts Options
	e := newEnvWith(t, time.Minute, nil, func(o *Options) { opts = *o })
	cert := e.device("alice", testpki.LeafOptions{})
	catalog, err := config.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	valid, err := encodeSnapshot(e.policy.Snapshot(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	serial := e.devices["alice"].Serial

	cases := corruptions(t, valid, serial)
	cases["intact"] = valid
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy-snapshot.json")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			p := NewPolicy(downSource{}, catalog, slog.New(slog.NewJSONHandler(&logs, nil)))
			if err := p.PersistTo(path); err != nil {
				t.Fatalf("start-up stopped: %v", err)
			}
			c := e.client(&cert)
			url := gatewayOn(t, e, opts, p)
			if _, err := c.PostForm(url+"/login", map[string][]string{"username": {"shop:alice"}, "password": {"alice-password"}}); err != nil {
				t.Fatal(err)
			}
			status, reason, _ := get(t, c, url+"/orders/sold")
			if name == "intact" {
				if p.SnapshotsRefused() != 0 || status != 200 {
					t.Fatalf("intact file: refused %d, GET %d %q", p.SnapshotsRefused(), status, reason)
				}
				return
			}
			if p.SnapshotsRefused() != 1 || p.Snapshot().Seq != 0 || p.Staleness(time.Now()) < time.Hour {
				t.Fatalf("damaged file used: refused %d, seq %d", p.SnapshotsRefused(), p.Snapshot().Seq)
			}
			if status != 503 || reason != ReasonPolicyStale.String() {
				t.Fatalf("high-risk path with a damaged snapshot: %d %q, want 503 %s", status, reason, ReasonPolicyStale)
			}
			if status, _, _ := get(t, c, url+"/products"); status != 200 {
				t.Fatalf("normal path: %d", status)
			}
			l := logs.String()
			if !strings.Contains(l, "snapshot refused") || !strings.Contains(l, path) {
				t.Fatalf("refusal not logged with the file: %s", l)
			}
			if strings.Contains(l, serial) || strings.Contains(l, "alice") || strings.Contains(l, e.tenant.ID) {
				t.Fatalf("log quotes the snapshot: %s", l)
			}
		})
	}
}

// A valid snapshot keeps the time of its sync: loaded after an outage it
// is used for its seq but stays stale, so high-risk paths fail closed.
func TestSnapshotOldLoadedButStale(t *testing.T) {
	var opts Options
	e := newEnvWith(t, time.Minute, nil, func(o *Options) { opts = *o })
	cert := e.device("alice", testpki.LeafOptions{})
	catalog, _ := config.DefaultCatalog()
	synced := time.Now().Add(-2 * time.Minute)
	path := filepath.Join(t.TempDir(), "policy-snapshot.json")
	if err := saveSnapshot(path, e.policy.Snapshot(), synced); err != nil {
		t.Fatal(err)
	}
	p := NewPolicy(downSource{}, catalog, slog.New(slog.DiscardHandler))
	if err := p.PersistTo(path); err != nil {
		t.Fatal(err)
	}
	if p.Snapshot().Seq != e.policy.Snapshot().Seq || p.SnapshotsRefused() != 0 {
		t.Fatalf("seq %d, want %d", p.Snapshot().Seq, e.policy.Snapshot().Seq)
	}
	if st := p.Staleness(time.Now()); st < 2*time.Minute || st > 3*time.Minute {
		t.Fatalf("staleness %v: the old sync time was not kept", st)
	}
	c := e.client(&cert)
	url := gatewayOn(t, e, opts, p)
	if _, err := c.PostForm(url+"/login", map[string][]string{"username": {"shop:alice"}, "password": {"alice-password"}}); err != nil {
		t.Fatal(err)
	}
	if status, reason, _ := get(t, c, url+"/orders/sold"); status != 503 || reason != ReasonPolicyStale.String() {
		t.Fatalf("old snapshot: %d %q, want 503 %s", status, reason, ReasonPolicyStale)
	}
}

// The loader never panics and never accepts a file whose payload does not
// match its checksum.
func FuzzSnapshotFile(f *testing.F) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	valid, err := encodeSnapshot(testSnapshot(), now.Add(-time.Minute))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, data := range corruptions(f, valid, "0a1b2c3d4e5f") {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := decodeSnapshot(data, now)
		if err != nil {
			if s != nil || !errors.Is(err, errCorruptSnapshot) {
				t.Fatalf("refusal %v returned a snapshot or is not errCorruptSnapshot", err)
			}
			return
		}
		var file snapshotFile
		if err := json.Unmarshal(data, &file); err != nil {
			t.Fatalf("accepted a file that is not an envelope: %v", err)
		}
		sum := sha256.Sum256(file.Payload)
		if file.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatal("accepted a payload that does not match its checksum")
		}
	})
}
