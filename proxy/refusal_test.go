package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/devicegate/devicegate/internal/testpki"
	"github.com/devicegate/devicegate/store/sqlite/sqlitetest"
)

// Every refusing Reason has its sentence and next step in English and
// Chinese, and its page renders them with the reason code, the portal's
// look and (unless a certificate cannot help) the button to the
// certificate page.
func TestEveryReasonHasTexts(t *testing.T) {
	for i := range reasonCodes {
		r := Reason(i)
		if r == ReasonAllowed {
			continue
		}
		e, ok := refusalTexts[r]
		if !ok {
			t.Errorf("%s: no entry in refusalTexts", r)
			continue
		}
		for _, l := range []struct {
			lang, accept string
			text         refusalText
			wantHan      bool
		}{{"en", "en-US", e.en, false}, {"zh", "zh-CN,zh;q=0.9", e.zh, true}} {
			if l.text.What == "" || l.text.Next == "" {
				t.Errorf("%s/%s: what %q next %q", r, l.lang, l.text.What, l.text.Next)
			}
			if got := strings.IndexFunc(l.text.What+l.text.Next, func(c rune) bool { return unicode.Is(unicode.Han, c) }) >= 0; got != l.wantHan {
				t.Errorf("%s/%s: text in the other language: %q", r, l.lang, l.text.What)
			}
			req := httptest.NewRequest(http.MethodGet, "/orders/sold", nil)
			req.Header.Set("Accept-Language", l.accept)
			rec := httptest.NewRecorder()
			writeRefusal(rec, req, http.StatusForbidden, r, "https://portal.example/")
			body := rec.Body.String()
			for _, w := range []string{html.EscapeString(l.text.What), html.EscapeString(l.text.Next), "<code>" + r.String() + "</code>", pageChrome[l.lang].Code, `class="panel"`, "<style>"} {
				if !strings.Contains(body, w) {
					t.Errorf("%s/%s: page lacks %q", r, l.lang, w)
				}
			}
			if button := strings.Contains(body, `<a class="button" href="https://portal.example/">`+pageChrome[l.lang].Enroll); button == e.noEnroll {
				t.Errorf("%s/%s: enrollment button %v, noEnroll %v", r, l.lang, button, e.noEnroll)
			}
		}
	}
}

// The page's stylesheet is allowed by its hash, nothing else is (no
// script, no inline style beyond it, no framing).
func TestRefusalPageCSP(t *testing.T) {
	rec := httptest.NewRecorder()
	writeRefusal(rec, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusForbidden, ReasonNoCertificate, "https://portal.example/")
	sum := sha256.Sum256([]byte(pageCSS))
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") ||
		strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.Contains(rec.Body.String(), "<style>"+pageCSS+"</style>") {
		t.Fatal("the served stylesheet differs from the hashed one")
	}
}

// capture is a slog handler keeping the records it gets.
type capture struct {
	mu      sync.Mutex
	records []map[string]string
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *capture) WithGroup(string) slog.Handler            { return c }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	c.mu.Lock()
	c.records = append(c.records, m)
	c.mu.Unlock()
	return nil
}

func (c *capture) refusals() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, m := range c.records {
		if m["msg"] == "high-risk request refused" {
			out = append(out, m)
		}
	}
	return out
}

// A refused request of a known device is on the process log at info level
// with its reason and sub-account (an operator tailing the log sees it),
// never with the session cookie, the password or the certificate; an
// allowed request logs no refusal.
func TestRefusalsOfKnownDevicesLogged(t *testing.T) {
	logs := &capture{}
	st := sqlitetest.Open(t)
	e := newEnvOn(t, st, time.Minute, nil, func(o *Options) { o.Audit = NewAuditor(st, 64, slog.New(logs)) })
	aliceCert := e.device("alice", testpki.LeafOptions{})
	alice := e.client(&aliceCert)
	if status, _, _ := get(t, alice, e.url+"/orders/sold"); status != http.StatusForbidden { // no app session yet
		t.Fatalf("without a session: %d", status)
	}
	e.login(alice, "alice")
	if status, _, _ := get(t, alice, e.url+"/orders/sold"); status != http.StatusOK {
		t.Fatalf("legitimate request: %d", status)
	}
	if status, _, _ := get(t, alice, e.url+"/members"); status != http.StatusForbidden { // position lacks the point
		t.Fatalf("without the permission: %d", status)
	}
	got := logs.refusals()
	want := []string{ReasonNotLoggedIn.String(), ReasonNoPermission.String()}
	if len(got) != len(want) {
		t.Fatalf("%d refusals logged, want %d: %v", len(got), len(want), got)
	}
	for i, m := range got {
		if m["level"] != "INFO" || m["reason"] != want[i] || m["sub_account"] != "shop:alice" || m["device"] == "" {
			t.Errorf("refusal %d logged as %v, want reason %s of shop:alice at INFO", i, m, want[i])
		}
		for k, v := range m {
			if strings.Contains(v, "alice-password") || strings.Contains(v, "BEGIN") || strings.Contains(strings.ToLower(k), "cookie") {
				t.Errorf("a secret in the log: %s=%q", k, v)
			}
		}
	}
}
