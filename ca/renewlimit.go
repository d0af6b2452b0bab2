package ca

import (
	"context"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Renewal limits. Every renewal supersedes a serial that stays on the CRL
// until it expires, so a device renewing in a loop would grow the CRL (and
// every proxy's revocation set) without bound.
const (
	maxRenewals    = 3                   // successful renewals per device ...
	renewalWindow  = 24 * time.Hour      // ... within this window (counted in the store: all nodes, restarts)
	maxRenewBefore = 30 * 24 * time.Hour // a certificate renews in its last 30 days ...
)

// renewBefore is how long before its end a certificate may be renewed: 30
// days, or the last third of the configured validity when that is shorter.
func (a *Authority) renewBefore() time.Duration { return min(maxRenewBefore, a.opts.Validity/3) }

// RenewTooEarlyError refuses renewing a certificate far from its end.
type RenewTooEarlyError struct{ From time.Time }

func (e *RenewTooEarlyError) Error() string {
	return fmt.Sprintf("this certificate can be renewed from %s, near its end; to renew it sooner, ask the main account to allow an early renewal of this device", e.From.UTC().Format(time.RFC3339))
}

// RenewRateError refuses a device that renewed maxRenewals times within
// renewalWindow.
type RenewRateError struct{ RetryAfter time.Duration }

func (e *RenewRateError) Error() string {
	return fmt.Sprintf("this device renewed %d times within %v; try again in %v", maxRenewals, renewalWindow, e.RetryAfter.Round(time.Second))
}

func (e *RenewRateError) retryAfter() time.Duration { return e.RetryAfter }

// checkRenewal refuses before anything is signed: a device over its rate,
// or a certificate not yet near its end unless the owner allowed the device
// an early renewal that has not ended (the store clears the permission
// with the renewal, so it serves once). A store that cannot answer refuses
// (ratelimit.Shared fails closed).
func (a *Authority) checkRenewal(ctx context.Context, dev store.Device, now time.Time) error {
	if ok, wait := a.renewals.Allowed(ctx, renewalKey(dev), now); !ok {
		return &RenewRateError{RetryAfter: wait}
	}
	if from := dev.ExpiresAt.Add(-a.renewBefore()); now.Before(from) && !now.Before(dev.RenewAllowedUntil) {
		return &RenewTooEarlyError{From: from}
	}
	return nil
}

// countRenewal counts a renewal that happened; the maxRenewals-th within
// renewalWindow blocks the device until the window has passed.
func (a *Authority) countRenewal(ctx context.Context, dev store.Device, now time.Time) {
	a.renewals.Fail(ctx, renewalKey(dev), now)
}

func renewalKey(dev store.Device) string { return dev.TenantID + "/" + dev.ID }
