package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The feeds of the CA, for proxies authenticated with a proxy-role client
// certificate (VersionHeader required): both are long polls,
// GET PATH?since=SEQ&wait=DURATION, answered at once when something newer
// than SEQ exists and otherwise when the store changes or the wait ends.
// Each answers only the stores of the proxy certificate's scope.
const (
	PolicyPath      = "/v1/policy"
	RevocationsPath = "/v1/revocations"
)

// PolicyPage is one answer of the policy feed: the sub-accounts and
// devices changed after the caller's seq, complete up to Seq. It carries
// what a proxy's decision needs and nothing else: no secrets, no
// enrollment addresses or user agents, no labels.
type PolicyPage struct {
	Seq         int64              `json:"seq"` // ask again with since=seq
	SubAccounts []PolicySubAccount `json:"subaccounts"`
	Devices     []PolicyDevice     `json:"devices"`
}

// PolicySubAccount is a sub-account as a decision sees it.
type PolicySubAccount struct {
	TenantID   string     `json:"tenant_id"`
	ID         string     `json:"id"`
	FullName   string     `json:"full_name"` // "store:name"; a store name has no ':'
	Status     string     `json:"status"`    // active, frozen, departed
	Role       string     `json:"role"`      // its default permission points
	Grants     []string   `json:"grants"`    // supplementary permission points
	Protection Protection `json:"protection"`
	Window     Window     `json:"window,omitzero"` // temporary accounts only
	// NotVerified: frozen for not finishing real-person verification in
	// time; high-risk pages refuse it (reason not_verified).
	NotVerified bool `json:"not_verified,omitempty"`

	// RoleEdited: the store's own points of Role (RolePoints) replace the
	// catalog's defaults (positions per store).
	RoleEdited bool     `json:"role_edited,omitempty"`
	RolePoints []string `json:"role_points,omitempty"`
}

// Protection is a sub-account's certificate protection.
type Protection struct {
	Enabled    bool `json:"enabled"`
	MaxDevices int  `json:"max_devices"` // N
}

// Window bounds when a temporary sub-account may work; a missing side is
// unbounded.
type Window struct {
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
}

// PolicyDevice is a device as a decision sees it. A device that is not
// active (revoked, superseded by a renewal) is sent too, so the proxy
// forgets it.
type PolicyDevice struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	SubID     string    `json:"sub_id"`
	Serial    string    `json:"serial"` // lower-case hex of its current certificate
	Status    string    `json:"status"` // active, revoked
	ExpiresAt time.Time `json:"expires_at"`
}

// MaxPolicyPage bounds one policy page (the CA pages its answers; a first
// sync of a large installation is the biggest).
const MaxPolicyPage = 64 << 20

// DecodePolicyPage reads one policy page (at most MaxPolicyPage bytes) and
// refuses it whole when it is not one: trailing data, a seq older than since (the policy never goes back), an
// entry without its ids, or a full name that is not "store:name".
func DecodePolicyPage(r io.Reader, since int64) (PolicyPage, error) {
	var page PolicyPage
	dec := json.NewDecoder(io.LimitReader(r, MaxPolicyPage))
	if err := dec.Decode(&page); err != nil {
		return PolicyPage{}, fmt.Errorf("policy page: %w", err)
	}
	if dec.More() {
		return PolicyPage{}, errors.New("policy page: trailing data")
	}
	if page.Seq < since {
		return PolicyPage{}, fmt.Errorf("policy page: seq went back from %d to %d", since, page.Seq)
	}
	for _, a := range page.SubAccounts {
		store, name, ok := strings.Cut(a.FullName, ":")
		if a.ID == "" || a.TenantID == "" || store == "" || name == "" || !ok {
			return PolicyPage{}, fmt.Errorf("policy page: sub-account %q lacks its id, store or full name", a.ID)
		}
	}
	for _, d := range page.Devices {
		if d.ID == "" || d.TenantID == "" || d.SubID == "" {
			return PolicyPage{}, fmt.Errorf("policy page: device %q lacks its id, store or sub-account", d.ID)
		}
	}
	return page, nil
}

// RevocationPage is one answer of the revocation feed. When More is set,
// ask again at once with since=Seq.
type RevocationPage struct {
	Seq         int64        `json:"seq"`
	More        bool         `json:"more"`
	Revocations []Revocation `json:"revocations"`
}

// Revocation is one revoked device certificate.
type Revocation struct {
	Seq       int64     `json:"seq"`
	Serial    string    `json:"serial"` // lower-case hex
	TenantID  string    `json:"tenant_id"`
	SubID     string    `json:"sub_id"`
	DeviceID  string    `json:"device_id"`
	Reason    int       `json:"reason"` // RFC 5280 CRLReason
	RevokedAt time.Time `json:"revoked_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PolicyAckPath takes a proxy's acknowledgment of the policy it has
// applied (POST, PolicyAck), so that `revoke --wait` and the owner console
// can tell where a revocation is in force. The CA records it for the proxy
// of the client certificate, with its own time.
const PolicyAckPath = "/v1/policy/ack"

// PolicyAckEvery is how often a proxy acknowledges at least, changes or
// not: the heartbeat. A proxy silent for 3 of them counts as gone.
const PolicyAckEvery = 2 * time.Second

// PolicyAck says which policy seq a proxy's snapshot has applied.
type PolicyAck struct {
	Proxy      string `json:"proxy"`       // the name in the proxy's certificate; another is refused
	AppliedSeq int64  `json:"applied_seq"` // every change up to this seq is in force there
}
