package ca

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// A running CA node follows the CA directory's device intermediates: Run
// reads them again every Options.ReloadEvery, and a changed set (a new
// intermediate trusted, another one activated, an old one retired) is
// used from then on: issuance and renewal sign with the new active one,
// the API's and the owner console's handshakes (FollowDeviceCAs), OCSP and
// the CRLs follow the new trusted set. A directory that does not load (a
// half-copied rotation: a state file naming a certificate or key not there
// yet, a certificate that does not parse or is not the root's) changes
// nothing: the node keeps the set it has, logs the error and counts it
// (devicegate_ca_intermediate_reloads_total{result="failed"}), and tries
// again at the next reload.

// errOtherCA refuses a reload whose root or server intermediate is not the
// running node's: that is another CA, not a rotation.
var errOtherCA = errors.New("the CA directory's root or server intermediate is not the one this node started with: not a device intermediate rotation, restart the node to change them")

// watchIntermediates reloads the device intermediates every ReloadEvery
// until ctx ends (nothing without Options.Dir).
func (a *Authority) watchIntermediates(ctx context.Context) {
	if a.opts.Dir == "" {
		return
	}
	t := time.NewTicker(a.opts.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = a.ReloadIntermediates(ctx) // logged and counted
		}
	}
}

// ReloadIntermediates reads the device intermediates of Options.Dir again
// and reports whether a changed set is now in use. On an error the node
// keeps its current set.
func (a *Authority) ReloadIntermediates(ctx context.Context) (bool, error) {
	if a.opts.Dir == "" {
		return false, errors.New("no CA directory to reload from")
	}
	log := a.opts.Logger
	cur := a.cur.Load()
	keys, err := LoadKeys(a.opts.Dir)
	if err == nil && !sameCA(cur.keys, keys) {
		err = errOtherCA
	}
	if err == nil && sameDeviceCAs(cur.keys, keys) {
		return false, nil
	}
	var s *signer
	if err == nil {
		s, err = newDeviceSigner(keys)
	}
	if err != nil {
		a.countReload("failed")
		log.Error("device intermediates: reload failed, keeping the current ones", "dir", a.opts.Dir, "err", err)
		return false, err
	}
	if !a.cur.CompareAndSwap(cur, &issuing{keys: keys, signer: s}) {
		return false, nil // another reload got there first
	}
	// The new set's CRLs at once (else at the next tick, which notices
	// the change too).
	if err := a.revs.refresh(ctx); err != nil && ctx.Err() == nil {
		log.Error("CRL refresh after the reload failed", "err", err)
	}
	a.countReload("reloaded")
	log.Info("device intermediates reloaded", "active", keys.DeviceCAs[0].Name,
		"trusted", deviceCANames(keys.DeviceCAs), "retired", deviceCANames(keys.Retired))
	return true, nil
}

// sameCA: the same root and server intermediate.
func sameCA(a, b *Keys) bool {
	return bytes.Equal(a.Root.Raw, b.Root.Raw) && bytes.Equal(a.Server.Raw, b.Server.Raw)
}

// sameDeviceCAs: the same device intermediates in the same roles, and the
// same root CRL (re-signed by `ca intermediate new`).
func sameDeviceCAs(a, b *Keys) bool {
	same := func(x, y []DeviceCA) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i].Name != y[i].Name || x[i].State != y[i].State || !bytes.Equal(x[i].Cert.Raw, y[i].Cert.Raw) {
				return false
			}
		}
		return true
	}
	return same(a.DeviceCAs, b.DeviceCAs) && same(a.Retired, b.Retired) && bytes.Equal(a.RootCRLPEM, b.RootCRLPEM)
}

func deviceCANames(cas []DeviceCA) []string {
	out := make([]string, 0, len(cas))
	for _, d := range cas {
		out = append(out, d.Name)
	}
	return out
}
