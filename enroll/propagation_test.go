package enroll_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/store"
)

// After a revocation the owner's device list says where it is in force,
// from the proxies' reports: "applied on 1/2 proxies; not yet on core-2"
// until core-2 reports the revocation's seq, then "applied on 2/2
// proxies". A departed proxy is not counted; zh-CN says the same.
func TestOwnerSeesRevocationPropagation(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	owner.ownerLogin("")
	sub := owner.newSub("小红", "customer-service", "staff-password-1")
	owner.protect(sub, "2")
	is, err := e.authority.Issue(e.ctx, ca.IssueRequest{TenantID: e.tenant.ID, SubID: sub.ID, CSR: csrPEM(t), Label: "front desk"})
	if err != nil {
		t.Fatal(err)
	}
	report := func(name string, seq int64, at time.Time) {
		t.Helper()
		if err := e.st.ReportProxy(e.ctx, store.ProxyReport{Name: name, Seq: seq, SeenAt: at, Heartbeat: 2 * time.Second, Via: store.ViaStore}); err != nil {
			t.Fatal(err)
		}
	}
	seq, _ := e.st.CurrentSeq(e.ctx)
	report("core-1", seq, e.now)
	report("core-2", seq, e.now)
	report("core-gone", 0, e.now.Add(-time.Hour))

	owner.get("/owner/subs/" + sub.ID)
	if strings.Contains(owner.last, "proxies") {
		t.Fatalf("an active device shows a propagation:\n%s", owner.last)
	}
	if st, _, _ := owner.post("/owner/subs/"+sub.ID+"/devices/"+is.Device.ID+"/revoke", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", st, owner.last)
	}
	revoked, _ := e.st.CurrentSeq(e.ctx)
	report("core-1", revoked, e.now)

	steps := []struct {
		name      string
		lang      string
		want      string
		wantNotIn []string
	}{
		{"one proxy behind", "en", "applied on 1/2 proxies; <span class=\"not-yet\">not yet on core-2</span>", []string{"core-gone"}},
		{"one proxy behind, zh-CN", "zh", "已在 1/2 个代理生效; <span class=\"not-yet\">尚未在 core-2 生效</span>", nil},
	}
	for _, s := range steps {
		owner.setLang(s.lang)
		owner.get("/owner/subs/" + sub.ID)
		if !strings.Contains(owner.last, s.want) {
			t.Fatalf("%s: page lacks %q:\n%s", s.name, s.want, owner.last)
		}
		for _, no := range s.wantNotIn {
			if strings.Contains(owner.last, no) {
				t.Fatalf("%s: page shows %q", s.name, no)
			}
		}
	}
	report("core-2", revoked, e.now)
	owner.setLang("en")
	owner.get("/owner/subs/" + sub.ID)
	if !strings.Contains(owner.last, "applied on 2/2 proxies") || strings.Contains(owner.last, "not yet") {
		t.Fatalf("after every live proxy reported:\n%s", owner.last)
	}
}

// setLang picks the portal's language as the switch does (its cookie).
func (b *browser) setLang(lang string) {
	u, _ := url.Parse(b.url("/"))
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "dg_lang", Value: lang, Path: "/"}})
}
