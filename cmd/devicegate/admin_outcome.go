package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/devicegate/devicegate/store"
)

// The lines the operator reads after a command that changes devices: what
// happened to the devices, and what to do to let a computer in again.

// enrollAgain is how a computer of sub-account full gets a certificate again.
func enrollAgain(full string) string {
	return fmt.Sprintf("to let a computer in again, enroll it with a new code: devicegate admin sub ticket %s (or the owner console)", full)
}

// deviceRevokedText is `device revoke`'s outcome.
func deviceRevokedText(full string, d store.Device, rv store.Revocation) string {
	return fmt.Sprintf("device %s of %s revoked (serial %s, reason %s, seq %d)\n"+
		"proxies refuse it from their next policy sync\n%s\n",
		d.ID, full, rv.Serial, reasonName(rv.Reason), rv.Seq, enrollAgain(full))
}

// subStatusText is the outcome of `sub depart`, `sub freeze` and `sub
// restore`: revoked lists what this command revoked, stillRevoked how many
// of the sub-account's certificates stay revoked.
func subStatusText(s store.SubAccount, revoked []store.Revocation, stillRevoked int) string {
	var b strings.Builder
	full := s.FullName()
	fmt.Fprintf(&b, "%s is %s\n", full, s.Status)
	switch s.Status {
	case store.StatusActive:
		b.WriteString("the sub-account can log in to the portal again\n")
		if stillRevoked > 0 {
			fmt.Fprintf(&b, "its %d earlier device certificate(s) stay revoked (a revocation is never undone)\n%s\n", stillRevoked, enrollAgain(full))
		}
	default:
		if len(revoked) == 0 {
			b.WriteString("no device certificate was active: nothing to revoke\n")
		} else {
			serials := make([]string, len(revoked))
			for i, r := range revoked {
				serials[i] = r.Serial
			}
			fmt.Fprintf(&b, "%d device certificate(s) revoked (serials %s): proxies refuse them from their next policy sync\n",
				len(revoked), strings.Join(serials, ", "))
		}
		fmt.Fprintf(&b, "devicegate admin sub restore %s makes it active again; revoked certificates stay revoked\n", full)
	}
	return b.String()
}

// revokedDevices counts the sub-account's revoked device certificates.
func (a *app) revokedDevices(ctx context.Context, s store.SubAccount) (int, error) {
	devs, err := a.store.ListDevices(ctx, s.TenantID, s.ID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range devs {
		if d.Status == store.DeviceRevoked {
			n++
		}
	}
	return n, nil
}
