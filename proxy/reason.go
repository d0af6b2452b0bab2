package proxy

// Reason is the outcome of a decision: ReasonAllowed, or why a request was
// refused. The zero value is not a pass: a decision that forgot to set its
// outcome refuses (fail closed).
type Reason uint8

const (
	reasonUnset            Reason = iota // never returned on purpose; refuses
	ReasonAllowed                        // every rule holds
	ReasonNoCertificate                  // no client certificate
	ReasonBadIdentity                    // a certificate without a readable devicegate identity
	ReasonUnknownDevice                  // revoked, superseded, or never issued
	ReasonExpired                        // the certificate or the device record expired
	ReasonSubInactive                    // sub-account frozen, departed or unknown
	ReasonNotProtected                   // device protection is off for the sub-account
	ReasonOutsideWindow                  // outside the sub-account's validity window
	ReasonNoPermission                   // the sub-account's position lacks the point
	ReasonNotLoggedIn                    // no app session
	ReasonSessionMismatch                // the app session is another sub-account's
	ReasonAmbiguousSession               // two session cookies, or a cookie and Authorization
	ReasonBindingFailed                  // the app's session could not be checked
	ReasonPolicyStale                    // no policy fresh enough to decide on
	ReasonNotVerified                    // frozen: real-person verification not finished in time
	ReasonIssuerRetired                  // the certificate's device intermediate was retired (rotation): enroll again
)

// reasonCodes are the stable codes shown on refusal pages, in metrics, the
// audit log and whoami answers ("ok" for a pass, as those have always read).
var reasonCodes = [...]string{
	reasonUnset:            "undecided",
	ReasonAllowed:          "ok",
	ReasonNoCertificate:    "no_certificate",
	ReasonBadIdentity:      "bad_identity",
	ReasonUnknownDevice:    "device_not_active",
	ReasonExpired:          "certificate_expired",
	ReasonSubInactive:      "subaccount_inactive",
	ReasonNotProtected:     "protection_disabled",
	ReasonOutsideWindow:    "outside_validity_window",
	ReasonNoPermission:     "permission_denied",
	ReasonNotLoggedIn:      "not_logged_in",
	ReasonSessionMismatch:  "session_mismatch",
	ReasonAmbiguousSession: "ambiguous_session",
	ReasonBindingFailed:    "session_check_failed",
	ReasonPolicyStale:      "policy_stale",
	ReasonNotVerified:      "not_verified",
	ReasonIssuerRetired:    "issuer_retired",
}

// String is the reason's stable code.
func (r Reason) String() string {
	if int(r) < len(reasonCodes) {
		return reasonCodes[r]
	}
	return reasonCodes[reasonUnset]
}

// Allowed reports whether the request passes.
func (r Reason) Allowed() bool { return r == ReasonAllowed }
