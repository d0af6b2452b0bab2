package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/store"
)

type deviceJSON struct {
	ID          string    `json:"id"`
	Label       string    `json:"label"`
	Status      string    `json:"status"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	EnrolledIP  string    `json:"enrolled_ip,omitempty"`
	EnrolledUA  string    `json:"enrolled_ua,omitempty"`
	LastSeenAt  time.Time `json:"last_seen_at,omitzero"`
	LastSeenIP  string    `json:"last_seen_ip,omitempty"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	Reason      string    `json:"revocation_reason,omitempty"`
	// RenewAllowedUntil: the owner allowed one early renewal before then.
	RenewAllowedUntil time.Time `json:"renew_allowed_until,omitzero"`
}

func deviceView(d store.Device, now time.Time) deviceJSON {
	status := string(d.Status)
	if d.Status == store.DeviceActive && !d.ActiveAt(now) {
		status = "expired"
	}
	v := deviceJSON{ID: d.ID, Label: d.Label, Status: status, Serial: d.Serial, Fingerprint: d.Fingerprint,
		IssuedAt: d.IssuedAt, ExpiresAt: d.ExpiresAt, EnrolledIP: d.EnrolledIP, EnrolledUA: d.EnrolledUA,
		LastSeenAt: d.LastSeenAt, LastSeenIP: d.LastSeenIP, RevokedAt: d.RevokedAt, RenewAllowedUntil: d.RenewAllowedUntil}
	if d.Status == store.DeviceRevoked {
		v.Reason = reasonName(d.Reason)
	}
	return v
}

func (a *app) adminDeviceRevoke(ctx context.Context, target, reason string, wait waitOptions, env *cliEnv) error {
	r, err := a.revocation(reason)
	if err != nil {
		return err
	}
	d, err := a.store.FindDevice(ctx, target)
	if err != nil {
		return fmt.Errorf("device %q: %w", target, err)
	}
	w := a.startWaiter(ctx, wait)
	rv, err := a.ca.RevokeDevice(ctx, d.TenantID, d.ID, r, cliActor())
	if err != nil {
		w.stopEarly()
		return err
	}
	s, err := a.store.GetSubAccount(ctx, d.TenantID, d.SubID)
	if err != nil {
		return err
	}
	if _, err = fmt.Fprint(env.stdout, deviceRevokedText(s.FullName(), d, rv)); err != nil {
		return err
	}
	return w.finish(ctx, "revoked", rv.Seq, waitTimeout(wait), env)
}

// adminDeviceAllowRenew lets one device of STORE renew once before its
// certificate is near its end, within --for (default 7 days, at most
// store.MaxRenewAllowance). A device of another store is not found in STORE.
func (a *app) adminDeviceAllowRenew(ctx context.Context, storeName, target, forText string, env *cliEnv) error {
	d, err := parseDays(forText)
	if err != nil || d <= 0 || d > store.MaxRenewAllowance {
		return fmt.Errorf("%w: --for must be a duration between 1s and 30d, like 7d or 36h", store.ErrInvalid)
	}
	t, err := a.store.GetTenantByName(ctx, storeName)
	if err != nil {
		return fmt.Errorf("store %q: %w", storeName, err)
	}
	// FindDevice looks across stores: a device of another store is
	// answered exactly like one that does not exist.
	notFound := fmt.Errorf("device %q in store %q: %w", target, t.Name, store.ErrNotFound)
	dev, err := a.store.FindDevice(ctx, target)
	if errors.Is(err, store.ErrNotFound) || (err == nil && dev.TenantID != t.ID) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("device %q: %w", target, err)
	}
	dev, err = a.store.AllowEarlyRenewal(ctx, t.ID, dev.ID, time.Now().Add(d), cliActor())
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("device %q: %w", target, err)
	}
	fmt.Fprintf(env.stdout, "device %s (serial %s) may renew once before %s\n", dev.ID, dev.Serial, dev.RenewAllowedUntil.Format(time.RFC3339))
	return nil
}

// parseDays reads "7d" (days) or a Go duration ("36h").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("bad number of days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// reasons are the RFC 5280 revocation reasons the CLI takes, by name.
var reasons = []struct {
	name string
	r    store.RevocationReason
}{
	{"unspecified", store.ReasonUnspecified},
	{"keyCompromise", store.ReasonKeyCompromise},
	{"affiliationChanged", store.ReasonAffiliationChanged},
	{"superseded", store.ReasonSuperseded},
	{"cessationOfOperation", store.ReasonCessationOfOperation},
	{"privilegeWithdrawn", store.ReasonPrivilegeWithdrawn},
}

// reasonList names the reasons, for --reason's help.
func reasonList() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.name
	}
	return out
}

func parseReason(s string) (store.RevocationReason, error) {
	for _, r := range reasons {
		if strings.EqualFold(r.name, s) {
			return r.r, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil {
		for _, r := range reasons {
			if int(r.r) == n {
				return r.r, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: unknown revocation reason %q (--reason one of: %s, or its number)", store.ErrInvalid, s, strings.Join(reasonList(), ", "))
}

func reasonName(r store.RevocationReason) string {
	for _, v := range reasons {
		if v.r == r {
			return v.name
		}
	}
	return strconv.Itoa(int(r))
}

// revocation reads --reason of the revoke commands and checks that this
// data directory has a CA to revoke with.
func (a *app) revocation(reason string) (store.RevocationReason, error) {
	r, err := parseReason(reason)
	if err != nil {
		return 0, err
	}
	if a.ca == nil {
		return 0, errNoCA
	}
	return r, nil
}
