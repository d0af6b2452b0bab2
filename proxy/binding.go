package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// errNotLoggedIn means the request carries no valid app session.
var errNotLoggedIn = errors.New("not logged in to the app")

// bindingMode is how an upstream ties the app's login session to the
// certificate's sub-account.
type bindingMode uint8

const (
	bindingWhoami bindingMode = iota + 1 // the gateway asks the app who the session is
	bindingHeader                        // the app checks signed identity headers itself
	bindingJWT                           // the gateway verifies the app's own JWT
)

// parseBindingMode reads the configured mode; anything else is a start-up
// error (fail closed).
func parseBindingMode(s string) (bindingMode, error) {
	switch s {
	case "whoami":
		return bindingWhoami, nil
	case "header":
		return bindingHeader, nil
	case "jwt":
		return bindingJWT, nil
	}
	return 0, fmt.Errorf("unknown session binding mode %q (one of: whoami, header, jwt)", s)
}

// sessionBinder tells which app user ("store:name") a request's session
// belongs to.
type sessionBinder interface {
	User(ctx context.Context, in sessionInput) (string, error)
}

// whoamiBinder asks the app who the request's session belongs to, with the
// request's own cookies, and caches the answer by a hash of the session
// cookie (never the cookie itself).
type whoamiBinder struct {
	url       string
	cookie    string
	userField string
	client    *http.Client
	now       func() time.Time
	cache     *sessionCache
}

func newWhoamiBinder(url, cookie, userField string, client *http.Client, now func() time.Time) *whoamiBinder {
	return &whoamiBinder{url: url, cookie: cookie, userField: userField, client: client, now: now, cache: newSessionCache()}
}

// User returns the app user ("store:name") of the request's session. The
// app is asked with exactly what the cache is keyed on: the one session
// cookie and the Authorization header, if any (an app may prefer either).
func (b *whoamiBinder) User(ctx context.Context, in sessionInput) (string, error) {
	value, err := sessionCookie(in.cookies, b.cookie)
	if err != nil {
		return "", err
	}
	if len(in.auth) > 1 {
		return "", errAmbiguousSession
	}
	key := sessionKey(append([]string{value}, in.auth...)...)
	now := b.now()
	if user, ok := b.cache.get(key, now); ok {
		return user, nil
	}
	user, err := b.ask(ctx, value, in.auth)
	if err != nil {
		return "", err
	}
	b.cache.put(key, sessionEntry{user: user, from: now, until: now.Add(sessionCacheTTL)})
	return user, nil
}

func (b *whoamiBinder) ask(ctx context.Context, session string, auth []string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return "", err
	}
	req.AddCookie(&http.Cookie{Name: b.cookie, Value: session})
	if len(auth) == 1 {
		req.Header.Set("Authorization", auth[0])
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("whoami: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("whoami: %w", err)
	}
	return parseWhoami(resp.StatusCode, body, b.userField)
}

// parseWhoami reads the app's answer: 200 with a JSON object whose field
// holds "store:name"; 401/403 or no such field mean no session.
func parseWhoami(status int, body []byte, field string) (string, error) {
	switch status {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", errNotLoggedIn
	default:
		return "", fmt.Errorf("whoami: HTTP %d", status)
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("whoami: %w", err)
	}
	user, _ := out[field].(string)
	if user == "" {
		return "", errNotLoggedIn
	}
	return user, nil
}
