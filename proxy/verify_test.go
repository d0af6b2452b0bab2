package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// TestVerifyFrozenRefusesHighRisk: a sub-account frozen for not finishing
// real-person verification is refused on high-risk pages with its own
// reason and page (zh and en), keeps its normal pages, and passes the
// certificate check again once the freeze is lifted; the change reaches
// the proxy as a policy change.
func TestVerifyFrozenRefusesHighRisk(t *testing.T) {
	e := newEnv(t, time.Minute)
	carol := storetest.Sub(t, e.st, store.NewSubAccount{TenantID: e.tenant.ID, Name: "carol", VerifyBy: time.Now().Add(-time.Hour)})
	storetest.Protect(t, e.st, carol, 2)
	cert := e.device("carol", testpki.LeafOptions{})
	c := e.client(&cert)
	setFrozen := func(frozen bool) {
		t.Helper()
		if _, err := e.st.UpdateVerification(e.ctx, e.tenant.ID, carol.ID, actor, "verify.test", func(v *store.Verification) (map[string]string, error) {
			v.Frozen = frozen
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		e.sync()
	}
	// Not frozen yet: the certificate passes, the app session is missing.
	if status, reason, _ := get(t, c, e.url+"/orders/sold"); status != 403 || reason != ReasonNotLoggedIn.String() {
		t.Fatalf("before the freeze: %d %q", status, reason)
	}
	setFrozen(true)
	status, reason, body := get(t, c, e.url+"/orders/sold")
	if status != 403 || reason != "not_verified" || !strings.Contains(body, "real-person verification was not finished within 7 days") ||
		strings.Contains(body, "https://localhost:8444/") {
		t.Fatalf("frozen, high-risk: %d %q %q", status, reason, body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/orders/sold", nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "超过 7 天未完成实人认证") {
		t.Fatalf("zh page: %q", b)
	}
	if status, _, _ := get(t, c, e.url+"/products"); status != 200 {
		t.Fatalf("frozen, normal page: %d", status)
	}
	setFrozen(false)
	if status, reason, _ := get(t, c, e.url+"/orders/sold"); status != 403 || reason != ReasonNotLoggedIn.String() {
		t.Fatalf("after the unfreeze: %d %q", status, reason)
	}
}

// TestVerifyFrozenCrossesFeed: the flag survives the CA feed's JSON and
// its decoding into the policy's changes; a page without it is not frozen.
func TestVerifyFrozenCrossesFeed(t *testing.T) {
	for _, frozen := range []bool{true, false} {
		page := api.PolicyPage{Seq: 3, SubAccounts: []api.PolicySubAccount{{TenantID: "t", ID: "s", FullName: "shop:a", Status: "active", NotVerified: frozen}}}
		b, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(b, []byte(`"not_verified":true`)); got != frozen {
			t.Fatalf("wire form %s", b)
		}
		back, err := api.DecodePolicyPage(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatal(err)
		}
		if ch := policyChanges(back); ch.SubAccounts[0].VerifyFrozen != frozen {
			t.Fatalf("frozen %v became %v", frozen, ch.SubAccounts[0].VerifyFrozen)
		}
	}
}
