package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/postgres/pgtest"
)

// TestKillCAUnderEnrollment kills the CA process (`devicegate serve`, the
// real binary) with SIGKILL while several clients enroll devices of one
// sub-account (quota N) with one-time codes over HTTPS, then restarts it on
// the same data and checks, in the store, after every round:
//   - the active devices never exceed N, and no serial is recorded twice;
//   - every certificate a client received has its active device record
//     (same id, serial and key);
//   - no device record holds a slot that its client cannot get back: a
//     client whose request was cut retries it after the restart with the
//     same code and the same CSR, and gets that device's certificate again,
//     the very one recorded (same serial and fingerprint: re-delivered, see
//     ca.Authority.Issue), or, when no device was recorded, is served as a
//     new request; a recorded device its client cannot get fails the test;
//   - the free slots can be used again: enrolling up to N succeeds, one
//     more is refused with the limit message;
//   - the audit chain verifies.
//
// Short form: 6 rounds on SQLite and 3 on PostgreSQL (when pgtest finds
// it). Long form: DEVICEGATE_FAULT_ROUNDS=100 go test -run Kill ./cmd/devicegate/
func TestKillCAUnderEnrollment(t *testing.T) {
	bin := buildBinary(t)
	t.Run("sqlite", func(t *testing.T) { killCAUnderEnrollment(t, bin, "", faultRounds(t, 6)) })
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Start(t).NewDatabase(t)
		killCAUnderEnrollment(t, bin, dsn, faultRounds(t, 3))
	})
}

const (
	killQuota   = 3 // N
	killClients = 6 // concurrent enrolling clients
)

// enrollAttempt is one POST /v1/enroll of a client and what it got.
type enrollAttempt struct {
	code   string
	key    *ecdsa.PrivateKey
	csr    string // PEM
	status int    // 0: no answer (connection cut)
	errKey string // the API error code of a refusal
	device string
	serial string
	leaf   *x509.Certificate
	netErr error
}

func killCAUnderEnrollment(t *testing.T, bin, dsn string, rounds int) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "devicegate.yaml")
	conf := "data_dir: data\nlog: {level: warn}\nca:\n  listen: 127.0.0.1:0\nportal:\n  listen: 127.0.0.1:0\n"
	if dsn != "" {
		conf += fmt.Sprintf("database: {driver: postgres, dsn: %q}\n", dsn)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, tenant, sub := protectedShop(t, cfg, "finance", killQuota)
	defer a.Close()
	var pgdb *sql.DB
	if dsn != "" {
		var err error
		if pgdb, err = sql.Open("pgx", dsn); err != nil {
			t.Fatal(err)
		}
		defer pgdb.Close()
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.ca.Keys().Root)
	newTicket := func() string {
		code, _, err := a.ca.CreateTicket(ctx, tenant.ID, sub.ID, cliActor())
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	logFile := filepath.Join(dir, "ca.log")
	startCA := func() (*faultProc, *http.Client, string) {
		p := startProc(t, bin, logFile, []string{"ca_url"}, "serve", "--config", cfg)
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: killClients}}
		return p, c, p.urls["ca_url"]
	}

	// received: serial -> device id of every certificate a client holds.
	received := map[string]string{}
	var stats struct {
		issued, cut, recovered, retriedNew, lost int
		roundTime                                time.Duration
	}
	proc, client, caURL := startCA()
	for round := 1; round <= rounds; round++ {
		began := time.Now()
		// Every client opens its connection first, then all start at once;
		// the kill comes after a random delay within the burst.
		codes := make(chan string, 4*killClients)
		for range cap(codes) {
			codes <- newTicket()
		}
		close(codes)
		var mu sync.Mutex
		var attempts []*enrollAttempt
		var wg, opened sync.WaitGroup
		start := make(chan struct{})
		for range killClients {
			wg.Add(1)
			opened.Add(1)
			go func() {
				defer wg.Done()
				if resp, err := client.Get(caURL + "/healthz"); err == nil {
					resp.Body.Close()
				}
				opened.Done()
				<-start
				for code := range codes {
					at := newAttempt(t, code)
					postEnroll(client, caURL, at)
					mu.Lock()
					attempts = append(attempts, at)
					mu.Unlock()
					if at.status == 0 {
						return // the CA is gone
					}
				}
			}()
		}
		opened.Wait()
		close(start)
		time.Sleep(time.Duration(mrand.Int64N(int64(40 * time.Millisecond))))
		proc.kill()
		wg.Wait()
		client.CloseIdleConnections()
		if dsn != "" {
			// A COMMIT the dead CA had sent still lands: wait until its
			// server sessions are idle or gone before looking.
			waitQuiet(t, pgdb)
		}

		// The CA is dead: check the store as it was left.
		var cut []*enrollAttempt
		for _, at := range attempts {
			switch {
			case at.status == http.StatusCreated:
				stats.issued++
				if prev, dup := received[at.serial]; dup {
					t.Fatalf("round %d: serial %s handed out twice (devices %s, %s)", round, at.serial, prev, at.device)
				}
				received[at.serial] = at.device
			case at.status == 0:
				cut = append(cut, at)
			case at.errKey != "quota_exceeded":
				t.Fatalf("round %d: enrollment refused with %d %s", round, at.status, at.errKey)
			}
		}
		stats.cut += len(cut)
		devices := checkDevices(t, ctx, a.store, tenant.ID, sub.ID, round, received)
		orphans := map[string]store.Device{} // key id -> active device no client holds
		for _, d := range devices {
			if _, ok := received[d.Serial]; !ok && d.Status == store.DeviceActive {
				orphans[d.KeyID] = d
			}
		}
		if err := a.store.VerifyAudit(ctx, tenant.ID); err != nil {
			t.Fatalf("round %d: audit chain after the kill: %v", round, err)
		}

		// Restart on the same data; every cut client retries as it was.
		proc, client, caURL = startCA()
		for _, at := range cut {
			postEnroll(client, caURL, at)
			d, orphan := orphans[keyID(at.key)]
			switch {
			case at.status == http.StatusCreated && orphan:
				// Re-delivered: the very certificate recorded before the kill.
				if at.device != d.ID || at.serial != d.Serial || ca.Fingerprint(at.leaf) != d.Fingerprint {
					t.Fatalf("round %d: the retry got device %s serial %s, the store recorded %s serial %s for this key", round, at.device, at.serial, d.ID, d.Serial)
				}
				stats.recovered++
				delete(orphans, keyID(at.key))
				received[at.serial] = at.device
			case at.status == http.StatusCreated:
				stats.retriedNew++
				received[at.serial] = at.device
			case at.errKey == "quota_exceeded" && !orphan:
			case orphan:
				// The device was recorded, the client never got its
				// certificate and cannot get it: the slot would be lost
				// until the owner revokes it. Counted, then revoked so the
				// next rounds still measure.
				stats.lost++
				t.Errorf("round %d: device %s holds a slot its client never received and cannot get again (retry: %d %s %v)", round, d.ID, at.status, at.errKey, at.netErr)
				delete(orphans, keyID(at.key))
				if _, err := a.store.RevokeDevice(ctx, tenant.ID, d.ID, store.ReasonCessationOfOperation, cliActor()); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("round %d: retry of a cut enrollment: %d %s %v (a device for this key: %v)", round, at.status, at.errKey, at.netErr, orphan)
			}
		}
		for _, d := range orphans {
			t.Fatalf("round %d: device %s (serial %s) is active but no client sent its key", round, d.ID, d.Serial)
		}
		devices = checkDevices(t, ctx, a.store, tenant.ID, sub.ID, round, received)

		// The free slots work: fill up to N, then the limit message.
		active := store.CountActive(devices, time.Now())
		for i := active; i <= killQuota; i++ {
			at := newAttempt(t, newTicket())
			postEnroll(client, caURL, at)
			if i < killQuota && at.status != http.StatusCreated {
				t.Fatalf("round %d: enrollment %d of %d after the restart: %d %s %v", round, i+1, killQuota, at.status, at.errKey, at.netErr)
			}
			if i == killQuota && at.errKey != "quota_exceeded" {
				t.Fatalf("round %d: enrollment over the quota: %d %s %v", round, at.status, at.errKey, at.netErr)
			}
			if at.status == http.StatusCreated {
				received[at.serial] = at.device
			}
		}
		checkDevices(t, ctx, a.store, tenant.ID, sub.ID, round, received)
		if err := a.store.VerifyAudit(ctx, tenant.ID); err != nil {
			t.Fatalf("round %d: audit chain: %v", round, err)
		}
		// Free the slots for the next round (the owner revokes them).
		if _, err := a.store.RevokeSubAccountDevices(ctx, tenant.ID, sub.ID, store.ReasonCessationOfOperation, cliActor()); err != nil {
			t.Fatal(err)
		}
		stats.roundTime += time.Since(began)
	}
	proc.kill()
	t.Logf("%d rounds, %v per round: %d certificates received, %d requests cut by the kill, %d re-delivered to a retry (device recorded before the kill), %d retried as new, %d lost (recorded, never received, not recoverable)",
		rounds, (stats.roundTime / time.Duration(rounds)).Round(time.Millisecond), stats.issued, stats.cut, stats.recovered, stats.retriedNew, stats.lost)
}

// waitQuiet waits until no other session of the database is inside a
// statement or a transaction (the in-process store is idle meanwhile).
func waitQuiet(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'`).Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions of the killed CA still busy after 30 s (%d, %v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDevices checks the sub-account's device records against what the
// clients received and returns them.
func checkDevices(t *testing.T, ctx context.Context, st store.Store, tenantID, subID string, round int, received map[string]string) []store.Device {
	t.Helper()
	devices, err := st.ListDevices(ctx, tenantID, subID)
	if err != nil {
		t.Fatal(err)
	}
	bySerial := map[string]store.Device{}
	for _, d := range devices {
		if _, dup := bySerial[d.Serial]; dup {
			t.Fatalf("round %d: serial %s recorded twice", round, d.Serial)
		}
		bySerial[d.Serial] = d
	}
	if n := store.CountActive(devices, time.Now()); n > killQuota {
		t.Fatalf("round %d: %d active devices, quota %d", round, n, killQuota)
	}
	for serial, id := range received {
		d, ok := bySerial[serial]
		if !ok || d.ID != id {
			t.Fatalf("round %d: a client holds certificate %s (device %s) that the store does not record", round, serial, id)
		}
	}
	return devices
}

func newAttempt(t *testing.T, code string) *enrollAttempt {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Error(err)
		return &enrollAttempt{code: code}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Error(err)
	}
	return &enrollAttempt{code: code, key: key, csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
}

// postEnroll sends at's request and records the answer in at.
func postEnroll(c *http.Client, caURL string, at *enrollAttempt) {
	at.status, at.errKey, at.netErr, at.device, at.serial, at.leaf = 0, "", nil, "", "", nil
	body, _ := json.Marshal(api.EnrollRequest{Code: at.code, CSR: at.csr, Label: "kill test"})
	resp, err := c.Post(caURL+api.EnrollPath, "application/json", bytes.NewReader(body))
	if err != nil {
		at.netErr = err
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		at.netErr = err // the answer was cut: the client has nothing
		return
	}
	if resp.StatusCode != http.StatusCreated {
		var refusal api.ErrorBody
		if err := json.Unmarshal(data, &refusal); err != nil {
			at.netErr = fmt.Errorf("answer %d: %w", resp.StatusCode, err)
			return
		}
		at.status, at.errKey = resp.StatusCode, refusal.Error.Code
		return
	}
	var out api.Certificate
	if err := json.Unmarshal(data, &out); err != nil {
		at.netErr = fmt.Errorf("answer %d: %w", resp.StatusCode, err)
		return
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	if block == nil {
		at.netErr = fmt.Errorf("answer without a certificate")
		return
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&at.key.PublicKey) || ca.SerialHex(leaf) != out.Serial {
		at.netErr = fmt.Errorf("answer with a certificate for another key or serial: %v", err)
		return
	}
	at.status, at.device, at.serial, at.leaf = resp.StatusCode, out.DeviceID, out.Serial, leaf
}

// keyID is the store's key id of a public key (ca.KeyID of its certificate).
func keyID(k *ecdsa.PrivateKey) string {
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
