package enroll

import (
	"context"
	"time"

	"github.com/devicegate/devicegate/store"
)

// VerifyActions are the owner's real-person verification steps for a
// caller outside the portal (the admin CLI): the very rules the owner
// console applies, so the same checks, the same store change and the same
// audit action ("verify.approve", "verify.reject", "verify.unfreeze",
// "verify.unbind"), recorded under the caller's actor.
type VerifyActions struct {
	Store store.Store
	Now   func() time.Time // nil: time.Now
}

func (v VerifyActions) rules() verifyRules {
	now := v.Now
	if now == nil {
		now = time.Now
	}
	return verifyRules{st: v.Store, now: now}
}

// Approve decides a submission under review: verified.
func (v VerifyActions) Approve(ctx context.Context, tenantID, subID string, a store.Actor) (store.Verification, error) {
	return v.rules().decide(ctx, tenantID, subID, true, "", a)
}

// Reject decides a submission under review: rejected, with a reason (1..200
// characters) the staff member sees.
func (v VerifyActions) Reject(ctx context.Context, tenantID, subID, reason string, a store.Actor) (store.Verification, error) {
	return v.rules().decide(ctx, tenantID, subID, false, reason, a)
}

// Unfreeze lifts a verification freeze for store.UnfreezePeriod.
func (v VerifyActions) Unfreeze(ctx context.Context, tenantID, subID string, a store.Actor) (store.Verification, error) {
	return v.rules().unfreeze(ctx, tenantID, subID, a)
}

// Unbind (解除) releases a verified person; the sub-account gets a new link.
func (v VerifyActions) Unbind(ctx context.Context, tenantID, subID string, a store.Actor) (store.Verification, error) {
	return v.rules().unbind(ctx, tenantID, subID, a)
}
