package backoffice

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/secrets"
)

func newApp(t *testing.T) *App {
	h, err := secrets.HashPassword("alice-password-1")
	if err != nil {
		t.Fatal(err)
	}
	return New([]User{{Name: "demo-store:alice", PasswordHash: h}})
}

func login(t *testing.T, a *App, user, pw string) *httptest.ResponseRecorder {
	form := url.Values{"username": {user}, "password": {pw}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https") // as behind the proxy
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

func get(a *App, path string, c *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

func TestLoginAndPages(t *testing.T) {
	a := newApp(t)
	for _, bad := range [][2]string{{"demo-store:alice", "wrong"}, {"demo-store:mallory", "alice-password-1"}, {"", ""}} {
		if rec := login(t, a, bad[0], bad[1]); rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("login %q: %d", bad[0], rec.Code)
		}
	}
	rec := login(t, a, "demo-store:alice", "alice-password-1")
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d", rec.Code)
	}
	c := rec.Result().Cookies()[0]
	if c.Name != SessionCookie || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || len(c.Value) < 40 {
		t.Fatalf("session cookie: %+v", c)
	}
	// A second login gets another session id.
	if c2 := login(t, a, "demo-store:alice", "alice-password-1").Result().Cookies()[0]; c2.Value == c.Value {
		t.Fatal("session id reused across logins")
	}

	for _, p := range []string{"/", "/products", "/orders/sold", "/shipping", "/members"} {
		if rec := get(a, p, c); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "demo-store:alice") {
			t.Fatalf("%s: %d", p, rec.Code)
		}
		if rec := get(a, p, nil); rec.Code != http.StatusSeeOther {
			t.Fatalf("%s without login: %d", p, rec.Code)
		}
	}
	if rec := get(a, "/orders/export.csv", c); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "order,buyer") {
		t.Fatalf("export: %d %q", rec.Code, rec.Body.String())
	}

	var who map[string]string
	rec = get(a, "/whoami", c)
	if err := json.Unmarshal(rec.Body.Bytes(), &who); err != nil || who["user"] != "demo-store:alice" {
		t.Fatalf("whoami: %d %v", rec.Code, who)
	}
	if rec := get(a, "/whoami", &http.Cookie{Name: SessionCookie, Value: "forged"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("whoami with a forged cookie: %d", rec.Code)
	}

	// Sessions expire.
	a.now = func() time.Time { return time.Now().Add(sessionTTL + time.Minute) }
	if rec := get(a, "/whoami", c); rec.Code != http.StatusUnauthorized {
		t.Fatalf("expired session: %d", rec.Code)
	}
}

func TestUserNameIsEscaped(t *testing.T) {
	h, _ := secrets.HashPassword("xss-password-12")
	a := New([]User{{Name: "shop:<script>alert(1)</script>", PasswordHash: h}})
	c := login(t, a, "shop:<script>alert(1)</script>", "xss-password-12").Result().Cookies()[0]
	body := get(a, "/products", c).Body.String()
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatal("user name rendered unescaped")
	}
}
