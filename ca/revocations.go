package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/devicegate/devicegate/internal/atomicfile"
	"github.com/devicegate/devicegate/store"
)

// revocationState is the CA's view of revoked serials: the signed CRL, the
// set OCSP answers from, and a broadcast that wakes long-polling feeds.
type revocationState struct {
	a *Authority

	mu         sync.RWMutex
	seq        int64                       // store change seq the state was built from
	revoked    map[string]store.Revocation // serial hex -> revocation
	crlDER     []byte
	crlPEM     []byte
	crlNumber  int64
	nextUpdate time.Time
	changed    chan struct{} // closed and replaced whenever seq moves
}

func newRevocationState(a *Authority) *revocationState {
	return &revocationState{a: a, changed: make(chan struct{})}
}

// refresh rebuilds the CRL when the store's seq moved or the CRL is in the
// last third of its validity. Calls are serialized by the write lock.
func (r *revocationState) refresh(ctx context.Context) error {
	cur, err := r.a.store.CurrentSeq(ctx)
	if err != nil {
		return err
	}
	now := r.a.now()
	r.mu.RLock()
	fresh := r.crlDER != nil && cur == r.seq && now.Before(r.nextUpdate.Add(-r.a.opts.CRLValidity/3))
	r.mu.RUnlock()
	if fresh {
		return nil
	}

	revs, err := r.a.store.RevocationsForCRL(ctx, now)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur < r.seq { // a concurrent refresh already got further
		return nil
	}
	number := max(r.crlNumber+1, now.UnixMilli())
	next := now.Add(r.a.opts.CRLValidity)
	der, err := r.a.signCRL(revs, number, now, next)
	if err != nil {
		return err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if r.a.opts.CRLFile != "" {
		if err := atomicfile.Write(r.a.opts.CRLFile, pemBytes, 0o644); err != nil {
			return fmt.Errorf("write CRL file: %w", err)
		}
	}
	m := make(map[string]store.Revocation, len(revs))
	for _, rv := range revs {
		m[rv.Serial] = rv
	}
	moved := cur != r.seq
	r.seq, r.revoked, r.crlDER, r.crlPEM, r.crlNumber, r.nextUpdate = cur, m, der, pemBytes, number, next
	if moved {
		close(r.changed)
		r.changed = make(chan struct{})
	}
	return nil
}

// signCRL builds an RFC 5280 CRL signed by the device intermediate.
func (a *Authority) signCRL(revs []store.Revocation, number int64, now, next time.Time) ([]byte, error) {
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
	return x509.CreateRevocationList(rand.Reader, tmpl, a.keys.Device, a.keys.DeviceKey)
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

// wait returns the current seq and a channel closed when it moves.
func (r *revocationState) wait() (int64, <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.seq, r.changed
}

func (r *revocationState) run(ctx context.Context, every time.Duration) {
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
		}
	}
}

// CRL returns the current CRL in DER and PEM.
func (a *Authority) CRL() (der, pemBytes []byte) { return a.revs.crl() }
