// Package backoffice is a small demo back-office app with its own login, the
// kind of app devicegate sits in front of without changing it. Its pages
// follow the seeds' permission points: sold items, shipping, member
// management and order export hold buyer data (high risk), the product list
// does not.
package backoffice

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/devicegate/devicegate/internal/secrets"
)

// SessionCookie is the name of the app's session cookie.
const SessionCookie = "bo_session"

// sessionTTL bounds how long a login lasts.
const sessionTTL = 8 * time.Hour

// User is a login of the app: "store:name" and an argon2id password hash.
type User struct {
	Name         string
	PasswordHash string
}

// App is the back-office web app.
type App struct {
	users map[string]string // name -> password hash
	mux   *http.ServeMux

	mu       sync.Mutex
	sessions map[string]session // session id -> session
	now      func() time.Time
}

type session struct {
	user    string
	expires time.Time
}

// New builds the app for the given users.
func New(users []User) *App {
	a := &App{users: map[string]string{}, sessions: map[string]session{}, mux: http.NewServeMux(), now: time.Now}
	for _, u := range users {
		a.users[u.Name] = u.PasswordHash
	}
	a.mux.HandleFunc("GET /{$}", a.page("Back office", "", nil))
	a.mux.HandleFunc("GET /login", a.loginForm)
	a.mux.HandleFunc("POST /login", a.login)
	a.mux.HandleFunc("POST /logout", a.logout)
	a.mux.HandleFunc("GET /whoami", a.whoami)
	a.mux.HandleFunc("GET /products", a.page("Products (normal)", "products", products))
	a.mux.HandleFunc("GET /orders/sold", a.page("Sold items (high risk)", "orders.sold", orders))
	a.mux.HandleFunc("GET /shipping", a.page("Shipping (high risk)", "shipping", orders))
	a.mux.HandleFunc("GET /members", a.page("Member management (high risk)", "members", members))
	a.mux.HandleFunc("GET /orders/export.csv", a.exportCSV)
	return a
}

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'")
	a.mux.ServeHTTP(w, r)
}

// user returns the logged-in user of the request, if any.
func (a *App) user(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[c.Value]
	if !ok || !a.now().Before(s.expires) {
		delete(a.sessions, c.Value)
		return "", false
	}
	return s.user, true
}

func (a *App) loginForm(w http.ResponseWriter, _ *http.Request) {
	render(w, http.StatusOK, loginTmpl, nil)
}

// login checks username ("store:name") and password and sets a session
// cookie; a fresh session id on every login.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	name, pw := r.PostForm.Get("username"), r.PostForm.Get("password")
	hash, known := a.users[name]
	ok := false
	if known {
		ok, _ = secrets.VerifyPassword(hash, pw)
	} else {
		// Same work for unknown users, so timing does not list accounts.
		_, _ = secrets.VerifyPassword(dummyHash(), pw)
	}
	if !ok {
		render(w, http.StatusUnauthorized, loginTmpl, map[string]string{"Error": "Wrong username or password."})
		return
	}
	id := newSessionID()
	a.mu.Lock()
	if len(a.sessions) >= maxSessions {
		a.purgeExpiredLocked()
	}
	a.sessions[id] = session{user: name, expires: a.now().Add(sessionTTL)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: overHTTPS(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL.Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// overHTTPS: the browser talks HTTPS to us or to the proxy in front (which
// sets X-Forwarded-Proto and strips any client-sent value). Direct plain
// HTTP is only the demo's loopback shortcut.
func overHTTPS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// maxSessions triggers a sweep of expired sessions before a new one is added.
const maxSessions = 10000

func (a *App) purgeExpiredLocked() {
	now := a.now()
	for id, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, id)
		}
	}
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: overHTTPS(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// whoami is the endpoint the proxy's "whoami" session binding calls with
// the request's cookies.
func (a *App) whoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	u, ok := a.user(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "not logged in"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"user": u})
}

// page renders one page for logged-in users.
func (a *App) page(title, point string, rows [][]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := a.user(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		render(w, http.StatusOK, pageTmpl, map[string]any{"Title": title, "Point": point, "User": u, "Rows": rows})
	}
}

func (a *App) exportCSV(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.user(r); !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="orders.csv"`)
	fmt.Fprintln(w, "order,buyer,phone,address")
	for _, o := range orders[1:] {
		fmt.Fprintf(w, "%s,%s,%s,%s\n", o[0], o[1], o[2], o[3])
	}
}

func newSessionID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("devicegate: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// dummyHash is verified for unknown users (its password is random). It is
// made on first use: an argon2id hash at package init cost every devicegate
// command 200 ms.
var dummyHash = sync.OnceValue(func() string {
	h, err := secrets.HashPassword(newSessionID())
	if err != nil {
		panic(err)
	}
	return h
})

func render(w http.ResponseWriter, status int, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = t.Execute(w, data)
}
