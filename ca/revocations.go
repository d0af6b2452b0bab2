package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/internal/atomicfile"
	"github.com/devicegate/devicegate/store"
)

// revocationState is the CA's view of revoked serials: the signed CRL, the
// set OCSP answers from, and a broadcast that wakes long-polling feeds.
//
// The set and the broadcast follow every revocation at once (sync: the new
// rows only). Signing the CRL is the expensive part (a full read, every
// entry, a signature, a file write), so it happens only when the set
// gained a serial or the CRL is in the last third of its validity: the
// store's seq also moves for every issuance and sub-account edit, which
// leave the CRL as it is. While Run is active the signing happens at Run's
// next tick, so a burst of revocations is signed once, at most crlTick
// after it. OCSP and the feeds take mu only to read or swap values, never
// while the CRL is read, signed or written (build serializes that).
type revocationState struct {
	a *Authority

	running atomic.Bool  // Run rebuilds the CRL in the background
	builds  atomic.Int64 // CRLs signed (figures, tests)
	build   sync.Mutex   // one CRL build at a time

	mu         sync.RWMutex
	seq        int64                       // store change seq the set is complete up to
	revoked    map[string]store.Revocation // serial hex -> revocation (devices' and proxies')
	version    int64                       // moves whenever revoked gains a serial
	crlVersion int64                       // the version the CRL was built from
	crlDER     []byte                      // the active device intermediate's CRL
	crlByName  map[string][]byte           // every trusted device intermediate's CRL, by its name
	crlKeys    *Keys                       // the intermediates the CRLs were signed for
	crlPEM     []byte
	crlNumber  int64
	nextUpdate time.Time
	changed    chan struct{} // closed and replaced whenever seq moves
	signed     chan struct{} // closed and replaced whenever a new CRL is in place

	// kick asks run for a sync now: the store changed elsewhere (another
	// node's revocation, announced by PostgreSQL). One pending kick stands
	// for any number.
	kick chan struct{}
}

// syncPage bounds one read of new revocations.
const syncPage = 1000

func newRevocationState(a *Authority) *revocationState {
	return &revocationState{a: a, revoked: map[string]store.Revocation{}, changed: make(chan struct{}), signed: make(chan struct{}),
		kick: make(chan struct{}, 1)}
}

// refresh brings the set up to the store's seq and rebuilds the CRL when
// it lacks a serial of the set or is in the last third of its validity.
func (r *revocationState) refresh(ctx context.Context) error {
	r.mu.RLock()
	built := r.crlDER != nil
	r.mu.RUnlock()
	if built { // the first build reads everything anyway
		if err := r.sync(ctx); err != nil {
			return err
		}
	}
	now := r.a.now()
	r.mu.RLock()
	stale := r.crlDER == nil || r.crlVersion < r.version || !now.Before(r.nextUpdate.Add(-r.a.opts.CRLValidity/3)) ||
		r.crlKeys != r.a.Keys() // a rotation picked up: CRLs of the new set
	r.mu.RUnlock()
	if !stale {
		// The seq moved without a revocation (an issuance, a policy
		// change): the CRL is still complete.
		return nil
	}
	return r.rebuild(ctx)
}

// sync adds the revocations (devices' and proxies') newer than the set's
// seq and wakes the feeds. It reads only the new rows, so it is cheap
// enough for every revocation and every tick.
func (r *revocationState) sync(ctx context.Context) error {
	cur, err := r.a.store.CurrentSeq(ctx)
	if err != nil {
		return err
	}
	r.mu.RLock()
	have := r.seq
	r.mu.RUnlock()
	if cur <= have {
		return nil
	}
	var fresh []store.Revocation
	for after := have; ; {
		page, err := r.a.store.RevocationsSince(ctx, after, syncPage)
		if err != nil {
			return err
		}
		fresh = append(fresh, page...)
		if len(page) < syncPage {
			break
		}
		after = page[len(page)-1].Seq
	}
	proxies, err := r.a.store.ProxyRevocationsSince(ctx, have)
	if err != nil {
		return err
	}
	fresh = append(fresh, proxies...)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rv := range fresh {
		// Rows committed after cur was read come again with the next
		// sync; leaving them out keeps every serial of the set at or
		// below its seq, so a rebuild's read from a later seq has them.
		if rv.Seq > cur {
			continue
		}
		if _, known := r.revoked[rv.Serial]; !known {
			r.version++ // a serial the CRL may lack: sign again
		}
		r.revoked[rv.Serial] = rv
	}
	r.advanceLocked(cur)
	return nil
}

// advanceLocked moves the set's seq forward and wakes the feeds.
func (r *revocationState) advanceLocked(cur int64) {
	if cur <= r.seq {
		return
	}
	r.seq = cur
	close(r.changed)
	r.changed = make(chan struct{})
}

// rebuild signs a CRL of every unexpired revocation (devices' and
// proxies'), writes the CRL file and replaces the set with what it read,
// which also drops expired entries. The store read, the signature and the
// file write happen without mu; readers wait only for the swap.
func (r *revocationState) rebuild(ctx context.Context) error {
	r.build.Lock()
	defer r.build.Unlock()
	keys := r.a.Keys()
	cur, err := r.a.store.CurrentSeq(ctx)
	if err != nil {
		return err
	}
	// Every serial the set held at this version is committed, so the read
	// below has it; a serial added later moves the version past this one.
	r.mu.RLock()
	version := r.version
	r.mu.RUnlock()
	now := r.a.now()
	revs, err := r.a.store.RevocationsForCRL(ctx, now)
	if err != nil {
		return err
	}
	r.mu.RLock()
	number := max(r.crlNumber+1, now.UnixMilli())
	r.mu.RUnlock()
	next := now.Add(r.a.opts.CRLValidity)
	// One CRL per trusted device intermediate, each signed by its issuer
	// (RFC 5280: a CRL speaks for its issuer's certificates only), so a
	// certificate of the previous intermediate is checked against that
	// intermediate's CRL during the overlap. The store does not record
	// which intermediate issued a serial, so every CRL lists every revoked
	// serial: serials are 128-bit random, so another issuer's serial
	// matches none of this one's certificates.
	byName := make(map[string][]byte, len(keys.DeviceCAs))
	var der, pemBytes []byte
	for _, dc := range keys.DeviceCAs {
		d, err := r.a.signCRL(revs, number, now, next, dc)
		if err != nil {
			return err
		}
		if der == nil {
			der = d // the active intermediate's
		}
		byName[dc.Name] = d
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: d})...)
	}
	r.builds.Add(1)
	// The PEM form (file, /crl.pem, `ca crl`) carries the root's CRL too:
	// nginx and HAProxy want a CRL for every CA of the chain.
	pemBytes = append(pemBytes, keys.RootCRLPEM...)
	if r.a.opts.CRLFile != "" {
		if err := atomicfile.Write(r.a.opts.CRLFile, pemBytes, 0o644); err != nil {
			return fmt.Errorf("write CRL file: %w", err)
		}
	}
	set := make(map[string]store.Revocation, len(revs))
	for _, rv := range revs {
		set[rv.Serial] = rv
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Sync adds no serial above the seq it read, so with cur at or past
	// the set's seq every serial of the set was committed before revs was
	// read: revs holds them all (but the expired). Else a sync got further
	// meanwhile: keep its set, which has every serial of revs up to its
	// seq; the rest comes with the next sync.
	if cur >= r.seq {
		r.revoked = set
	}
	r.advanceLocked(cur)
	r.crlVersion, r.crlDER, r.crlPEM, r.crlNumber, r.nextUpdate = version, der, pemBytes, number, next
	r.crlByName, r.crlKeys = byName, keys
	close(r.signed)
	r.signed = make(chan struct{})
	return nil
}

// signCRL builds an RFC 5280 CRL signed by the device intermediate issuer.
func (a *Authority) signCRL(revs []store.Revocation, number int64, now, next time.Time, issuer DeviceCA) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revs))
	for _, rv := range revs {
		sn, ok := new(big.Int).SetString(rv.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("stored serial %q is not hex", rv.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   sn,
			RevocationTime: rv.RevokedAt,
			ReasonCode:     int(rv.Reason),
		})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                now,
		NextUpdate:                next,
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, issuer.Cert, issuer.Key)
}

// lookup answers OCSP: the revocation of serial, if any.
func (r *revocationState) lookup(serial string) (store.Revocation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rv, ok := r.revoked[serial]
	return rv, ok
}

// crl returns the current CRL (DER and PEM).
func (r *revocationState) crl() (der, pemBytes []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.crlDER, r.crlPEM
}

// crlWait returns the current CRL's number and a channel closed when a
// new CRL replaces it.
func (r *revocationState) crlWait() (int64, <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.crlNumber, r.signed
}

// wait returns the current seq and a channel closed when it moves.
func (r *revocationState) wait() (int64, <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.seq, r.changed
}

// run refreshes every tick until ctx ends; while it runs, revocations made
// by this process leave the CRL to it (afterRevocation).
func (r *revocationState) run(ctx context.Context, every time.Duration) {
	r.running.Store(true)
	defer r.running.Store(false)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.refresh(ctx); err != nil && ctx.Err() == nil {
				r.a.opts.Logger.Error("CRL refresh failed", "err", err)
			}
		case <-r.kick:
			// The set, OCSP and the feeds at once; the CRL at the tick.
			if err := r.sync(ctx); err != nil && ctx.Err() == nil {
				r.a.opts.Logger.Error("revocation sync failed", "err", err)
			}
		}
	}
}

// CRL returns the current CRL in DER (the active device intermediate's)
// and PEM (every trusted device intermediate's CRL, then the root's).
func (a *Authority) CRL() (der, pemBytes []byte) { return a.revs.crl() }

// CRLOf returns the DER CRL of the trusted device intermediate name.
func (a *Authority) CRLOf(name string) ([]byte, bool) {
	a.revs.mu.RLock()
	defer a.revs.mu.RUnlock()
	der, ok := a.revs.crlByName[name]
	return der, ok
}
