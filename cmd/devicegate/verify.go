package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/enroll"
	"github.com/devicegate/devicegate/store"
)

// verifyDeadlines is the job that freezes sub-accounts whose real-person
// verification is overdue; every CA/portal node runs it, the store's lease
// lets one work at a time.
func (a *app) verifyDeadlines(log *slog.Logger) enroll.VerifyDeadlines {
	host, _ := os.Hostname()
	now, every := clock()
	return enroll.VerifyDeadlines{Store: a.store, Holder: host + ":" + strconv.Itoa(os.Getpid()), Every: every, Log: log, Now: now}
}

// clockNow is the portal's clock (see clock).
func clockNow() func() time.Time {
	now, _ := clock()
	return now
}

// verifyBy is when a new sub-account must be verified: temporary ones
// (a window with an end) are exempt (seeds 001/003).
func verifyBy(w store.Window) time.Time {
	if !w.NotAfter.IsZero() {
		return time.Time{}
	}
	return time.Now().Add(store.VerifyPeriod)
}

// printVerifyLink prints a new sub-account's verification link (the owner
// console shows it as a QR code) and its deadline.
func (a *app) printVerifyLink(ctx context.Context, s store.SubAccount, env *cliEnv) error {
	v, err := a.store.GetVerification(ctx, s.TenantID, s.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	portal := strings.TrimSuffix(a.cfg.Proxy.EnrollURL, "/")
	fmt.Fprintf(env.stdout, "real-person verification: open %s/verify/%s on the staff member's phone and log in as %s; not verified by %s -> frozen\n",
		portal, v.Link, s.FullName(), v.Deadline.UTC().Format("2006-01-02 15:04 UTC"))
	return nil
}
