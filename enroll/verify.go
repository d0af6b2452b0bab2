package enroll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/devicegate/devicegate/store"
)

// Real-person verification (seeds 001 and 003). The rules live here, with
// the portal's clock; the store keeps the record and applies each step
// atomically with its audit event.

// Verifier decides submitted verifications. Begin is told of a submission
// once it is stored as under review; the decision comes back later through
// DecideVerification: from the owner's console (ManualVerifier) or an
// identity provider's signed callback (docs/verification.md).
type Verifier interface {
	Name() string
	Begin(ctx context.Context, v store.Verification, p store.Person) error
}

// ManualVerifier leaves the decision to the owner (or an operator with the
// CLI): nothing to start.
type ManualVerifier struct{}

func (ManualVerifier) Name() string { return "manual" }

func (ManualVerifier) Begin(context.Context, store.Verification, store.Person) error { return nil }

// The refusals of the rules; each has a message (verify_i18n.go).
var (
	errVerifyMismatch = errors.New("verification link of another sub-account")
	errVerifyExpired  = errors.New("verification attempt expired")
	errVerifyState    = errors.New("not possible in the verification's state")
	errVerifyInput    = errors.New("verification input is not valid")
)

// verifyRules applies the seeds' periods at now().
type verifyRules struct {
	st  store.Store
	now func() time.Time
}

func (r verifyRules) update(ctx context.Context, tenantID, subID string, a store.Actor, action string, change store.VerificationChange) (store.Verification, error) {
	return r.st.UpdateVerification(ctx, tenantID, subID, a, action, change)
}

// open checks that the link's sub-account is the one logged in (a link of
// another store's or another sub-account is "account mismatch").
func (r verifyRules) open(v store.Verification, tenantID, subID string) error {
	if v.TenantID != tenantID || v.SubID != subID {
		return errVerifyMismatch
	}
	return nil
}

// start begins an attempt: it must be submitted within VerifyAttempt.
func (r verifyRules) start(ctx context.Context, v store.Verification, a store.Actor) (store.Verification, error) {
	now := r.now()
	return r.update(ctx, v.TenantID, v.SubID, a, "verify.start", func(v *store.Verification) (map[string]string, error) {
		if !v.State.Pending() {
			return nil, errVerifyState
		}
		v.State, v.StartedAt = store.VerifyInProgress, now
		return map[string]string{"attempt_until": now.Add(store.VerifyAttempt).UTC().Format(time.RFC3339)}, nil
	})
}

// submit stores the user's name and binds the person (keyed hashes only):
// under review, and the account keeps working meanwhile.
func (r verifyRules) submit(ctx context.Context, v store.Verification, holder string, p store.Person, verifier Verifier, a store.Actor) (store.Verification, error) {
	np, ok := p.Normalized()
	if !ok || holder == "" || len([]rune(holder)) > 32 {
		return store.Verification{}, errVerifyInput
	}
	now := r.now()
	out, err := r.update(ctx, v.TenantID, v.SubID, a, "verify.submit", func(v *store.Verification) (map[string]string, error) {
		if v.State != store.VerifyInProgress {
			return nil, errVerifyState
		}
		if !now.Before(v.StartedAt.Add(store.VerifyAttempt)) {
			return nil, errVerifyExpired
		}
		v.State, v.SubmittedAt, v.Holder, v.Person, v.Reason = store.VerifyUnderReview, now, holder, &np, ""
		return map[string]string{"verifier": verifier.Name(), "review_until": now.Add(store.ReviewPeriod).UTC().Format(time.RFC3339)}, nil
	})
	if err != nil {
		return out, err
	}
	if err := verifier.Begin(ctx, out, np); err != nil {
		return out, fmt.Errorf("verifier %s: %w", verifier.Name(), err)
	}
	return out, nil
}

// decide records the verifier's decision on a submission under review. A
// rejection frees the person and leaves at least UnfreezePeriod to try
// again.
func (r verifyRules) decide(ctx context.Context, tenantID, subID string, approve bool, reason string, a store.Actor) (store.Verification, error) {
	if !approve && (reason == "" || len([]rune(reason)) > 200) {
		return store.Verification{}, errVerifyInput
	}
	now := r.now()
	action := "verify.approve"
	if !approve {
		action = "verify.reject"
	}
	return r.update(ctx, tenantID, subID, a, action, func(v *store.Verification) (map[string]string, error) {
		if v.State != store.VerifyUnderReview {
			return nil, errVerifyState
		}
		v.DecidedAt = now
		if approve {
			v.State, v.Frozen = store.VerifyVerified, false
			return nil, nil
		}
		v.State, v.Reason, v.Bound, v.Holder = store.VerifyRejected, reason, false, ""
		if again := now.Add(store.UnfreezePeriod); v.Deadline.Before(again) {
			v.Deadline = again
		}
		return map[string]string{"reason": reason}, nil
	})
}

// unfreeze lifts a freeze for UnfreezePeriod (the owner's action).
func (r verifyRules) unfreeze(ctx context.Context, tenantID, subID string, a store.Actor) (store.Verification, error) {
	now := r.now()
	return r.update(ctx, tenantID, subID, a, "verify.unfreeze", func(v *store.Verification) (map[string]string, error) {
		if !v.Frozen {
			return nil, errVerifyState
		}
		v.Frozen, v.Deadline, v.Unfreezes = false, now.Add(store.UnfreezePeriod), v.Unfreezes+1
		return nil, nil
	})
}

// unbind (解除) releases the verified person: the sub-account keeps its
// settings, gets a new link and VerifyPeriod to verify its next user.
func (r verifyRules) unbind(ctx context.Context, tenantID, subID string, a store.Actor) (store.Verification, error) {
	now := r.now()
	return r.update(ctx, tenantID, subID, a, "verify.unbind", func(v *store.Verification) (map[string]string, error) {
		if v.State != store.VerifyVerified {
			return nil, errVerifyState
		}
		*v = store.Verification{TenantID: v.TenantID, SubID: v.SubID, SubName: v.SubName, State: store.VerifyNotStarted,
			Deadline: now.Add(store.VerifyPeriod), Frozen: v.Frozen, Link: store.NewID(), Unfreezes: v.Unfreezes}
		return nil, nil
	})
}

// errNotDue: the record changed since it was listed (no freeze owed).
var errNotDue = errors.New("verification not overdue")

// freezeOverdue freezes every pending verification past its deadline; it
// re-checks each under the lock, so a concurrent submit or unfreeze wins.
func (r verifyRules) freezeOverdue(ctx context.Context) (int, error) {
	now := r.now()
	due, err := r.st.OverdueVerifications(ctx, now, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		_, err := r.update(ctx, d.TenantID, d.SubID, store.Actor{Kind: "system", Name: "verify-deadlines"}, "verify.freeze",
			func(v *store.Verification) (map[string]string, error) {
				if !v.State.Pending() || v.Frozen || now.Before(v.Deadline) {
					return nil, errNotDue
				}
				v.Frozen = true
				return nil, nil
			})
		switch {
		case errors.Is(err, errNotDue) || errors.Is(err, store.ErrNotFound):
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, nil
}
