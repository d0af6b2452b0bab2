package storetest

import (
	"testing"
	"time"

	"github.com/devicegate/devicegate/store"
)

// ProxyCerts: records round-trip with their scope; bad scopes and renewals
// of inactive certificates are refused and change nothing; a renewal keeps
// name and scope; revocation by name or serial moves the seq, puts the
// serials on the CRL and is refused for unknown names.
func testProxyCerts(t *testing.T, e *env) {
	other := e.mustTenant("other")
	now := e.now.Truncate(time.Microsecond)
	week := 7 * 24 * time.Hour
	cert := func(name string, scope store.ProxyScope) store.ProxyCert {
		return store.ProxyCert{Name: name, Serial: e.nextSerial(), Fingerprint: "ab", Scope: scope, IssuedAt: now, NotAfter: now.Add(week)}
	}
	edge := cert("edge-1", store.ProxyScope{Stores: []string{other.ID, e.tenant.ID, other.ID}})
	got, err := e.st.RecordProxyCert(e.ctx, edge)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Scope.Stores) != 2 || !got.Scope.Allows(e.tenant.ID) || !got.Scope.Allows(other.ID) || got.Scope.Allows("nope") || got.Scope.All {
		t.Fatalf("scope: %+v", got.Scope)
	}
	read, err := e.st.GetProxyCert(e.ctx, edge.Serial)
	if err != nil || read.Name != "edge-1" || !read.NotAfter.Equal(now.Add(week)) || len(read.Scope.Stores) != 2 || !read.ActiveAt(now) {
		t.Fatalf("read back: %+v %v", read, err)
	}
	all := cert("edge-all", store.ProxyScope{All: true})
	if _, err := e.st.RecordProxyCert(e.ctx, all); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.st.GetProxyCert(e.ctx, all.Serial); !p.Scope.All || !p.Scope.Allows(other.ID) {
		t.Fatalf("all-stores scope: %+v", p.Scope)
	}
	_, err = e.st.GetProxyCert(e.ctx, "abcdef")
	wantErr(t, err, store.ErrNotFound)

	// Refused, and nothing recorded.
	bad := []struct {
		name string
		p    store.ProxyCert
		want error
	}{
		{"empty scope", cert("edge-2", store.ProxyScope{}), store.ErrInvalid},
		{"all and a list", cert("edge-2", store.ProxyScope{All: true, Stores: []string{e.tenant.ID}}), store.ErrInvalid},
		{"unknown store", cert("edge-2", store.ProxyScope{Stores: []string{"nosuchstore"}}), store.ErrInvalid},
		{"no name", cert("", store.ProxyScope{All: true}), store.ErrInvalid},
		{"serial not hex", func() store.ProxyCert { p := cert("edge-2", store.ProxyScope{All: true}); p.Serial = "XYZ"; return p }(), store.ErrInvalid},
		{"duplicate serial", func() store.ProxyCert {
			p := cert("edge-2", store.ProxyScope{All: true})
			p.Serial = edge.Serial
			return p
		}(), store.ErrDuplicate},
		{"renew unknown", func() store.ProxyCert { p := cert("", store.ProxyScope{}); p.RenewedFrom = "abcdef"; return p }(), store.ErrProxyInactive},
		{"renew expired", func() store.ProxyCert {
			p := cert("", store.ProxyScope{})
			p.RenewedFrom, p.IssuedAt, p.NotAfter = edge.Serial, now.Add(week), now.Add(2*week)
			return p
		}(), store.ErrProxyInactive},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			seq := e.seq()
			_, err := e.st.RecordProxyCert(e.ctx, tc.p)
			wantErr(t, err, tc.want)
			if list, _ := e.st.ListProxyCerts(e.ctx); len(list) != 2 || e.seq() != seq {
				t.Fatalf("a refused record changed the store: %d certificates", len(list))
			}
		})
	}

	// A renewal keeps name and scope, whatever the request says.
	renewed := cert("other-name", store.ProxyScope{All: true})
	renewed.RenewedFrom = edge.Serial
	got, err = e.st.RecordProxyCert(e.ctx, renewed)
	if err != nil || got.Name != "edge-1" || got.Scope.All || len(got.Scope.Stores) != 2 {
		t.Fatalf("renewal: %+v %v", got, err)
	}

	// Revocation: unknown refused; by serial; by name takes the rest.
	_, err = e.st.RevokeProxyCerts(e.ctx, "no-such-proxy", store.ReasonKeyCompromise, now)
	wantErr(t, err, store.ErrNotFound)
	seq := e.seq()
	if since, err := e.st.ProxyRevocationsSince(e.ctx, 0); err != nil || len(since) != 0 {
		t.Fatalf("proxy revocations before any: %+v %v", since, err)
	}
	revoked, err := e.st.RevokeProxyCerts(e.ctx, renewed.Serial, store.ReasonKeyCompromise, now)
	if err != nil || len(revoked) != 1 || revoked[0].Serial != renewed.Serial || revoked[0].RevokedAt.IsZero() || e.seq() <= seq {
		t.Fatalf("revoke by serial: %+v %v (seq %d -> %d)", revoked, err, seq, e.seq())
	}
	first := e.seq()
	revoked, err = e.st.RevokeProxyCerts(e.ctx, "edge-1", store.ReasonCessationOfOperation, now)
	if err != nil || len(revoked) != 1 || revoked[0].Serial != edge.Serial || revoked[0].Reason != store.ReasonCessationOfOperation {
		t.Fatalf("revoke by name: %+v %v", revoked, err)
	}
	// The CA follows proxy revocations by seq, as it follows devices'.
	for _, tc := range []struct {
		after int64
		want  []string
	}{{seq, []string{renewed.Serial, edge.Serial}}, {first, []string{edge.Serial}}, {e.seq(), nil}} {
		since, err := e.st.ProxyRevocationsSince(e.ctx, tc.after)
		if err != nil || len(since) != len(tc.want) {
			t.Fatalf("proxy revocations after seq %d: %+v %v, want %v", tc.after, since, err, tc.want)
		}
		for i, rv := range since {
			if rv.Serial != tc.want[i] || rv.Seq <= tc.after || rv.TenantID != "" || rv.DeviceID != "" || !rv.ExpiresAt.Equal(now.Add(week)) || !rv.RevokedAt.Equal(now) {
				t.Fatalf("proxy revocations after seq %d: %+v, want %v", tc.after, since, tc.want)
			}
		}
	}
	if p, _ := e.st.GetProxyCert(e.ctx, edge.Serial); p.ActiveAt(now) {
		t.Fatal("a revoked proxy certificate is still active")
	}
	if again, err := e.st.RevokeProxyCerts(e.ctx, "edge-1", store.ReasonKeyCompromise, now); err != nil || len(again) != 0 {
		t.Fatalf("revoking again: %+v %v", again, err)
	}
	// A revoked certificate cannot be renewed.
	r2 := cert("", store.ProxyScope{})
	r2.RenewedFrom = edge.Serial
	_, err = e.st.RecordProxyCert(e.ctx, r2)
	wantErr(t, err, store.ErrProxyInactive)

	// Both revoked serials are on the CRL until they expire.
	crl, err := e.st.RevocationsForCRL(e.ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	onCRL := map[string]bool{}
	for _, rv := range crl {
		onCRL[rv.Serial] = rv.TenantID == "" && rv.DeviceID == ""
	}
	if !onCRL[edge.Serial] || !onCRL[renewed.Serial] || onCRL[all.Serial] {
		t.Fatalf("CRL: %+v", crl)
	}
	if crl, _ := e.st.RevocationsForCRL(e.ctx, now.Add(week+time.Hour)); len(crl) != 0 {
		t.Fatalf("expired proxy certificates stay on the CRL: %+v", crl)
	}
	if list, _ := e.st.ListProxyCerts(e.ctx); len(list) != 3 || list[0].Name != "edge-1" || list[2].Name != "edge-all" {
		t.Fatalf("list: %+v", list)
	}
}
