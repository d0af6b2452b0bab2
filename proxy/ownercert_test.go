package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
)

// The owner's own certificate (issue 13 item 4) is for the owner console:
// at a proxy it is a valid device certificate of a principal with no
// position and no permission point, so every high-risk page refuses it.
func TestOwnerCertHasNoPermissionAtProxy(t *testing.T) {
	e := newEnv(t, time.Minute)
	owner, err := e.st.EnsureOwnerAccount(e.ctx, e.tenant.ID, actor)
	if err != nil {
		t.Fatal(err)
	}
	id := store.NewID()
	leaf, key := e.pki.Leaf(t, testpki.LeafOptions{URIs: []string{identity.Principal{TrustDomain: td, TenantID: e.tenant.ID, SubID: owner.ID, DeviceID: id}.URI().String()}})
	if _, _, err := e.st.IssueDevice(e.ctx, store.IssueRequest{TenantID: e.tenant.ID, SubID: owner.ID, DeviceID: id, Serial: leaf.SerialNumber.Text(16),
		Fingerprint: "00", IssuedAt: leaf.NotBefore, ExpiresAt: leaf.NotAfter, Now: time.Now()}, actor); err != nil {
		t.Fatal(err)
	}
	e.sync()
	cert := e.pki.TLSCertificate(leaf, key)
	c := e.client(&cert)
	for _, path := range []string{"/orders/sold", "/shipping", "/members"} {
		status, reason, _ := get(t, c, e.url+path)
		if status == http.StatusOK || reason != ReasonNoPermission.String() {
			t.Fatalf("%s with the owner's certificate: %d %q, want refused %q", path, status, reason, ReasonNoPermission)
		}
	}
	// The legitimate case beside it: a staff certificate of the position.
	staff := e.device("alice", testpki.LeafOptions{})
	sc := e.client(&staff)
	e.login(sc, "alice")
	if status, reason, _ := get(t, sc, e.url+"/orders/sold"); status != http.StatusOK {
		t.Fatalf("alice's certificate: %d %q", status, reason)
	}
}
