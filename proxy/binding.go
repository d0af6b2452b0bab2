package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// whoamiTTL is how long an app's "who am I" answer is reused (issue: <= 30 s).
const whoamiTTL = 30 * time.Second

// errNotLoggedIn means the request carries no valid app session.
var errNotLoggedIn = errors.New("not logged in to the app")

// whoamiBinder asks the app who the request's session belongs to, with the
// request's own cookies, and caches the answer by a hash of the session
// cookie (never the cookie itself).
type whoamiBinder struct {
	url       string
	cookie    string
	userField string
	client    *http.Client

	mu    sync.Mutex
	cache map[[32]byte]whoamiEntry
}

type whoamiEntry struct {
	user    string
	expires time.Time
}

const maxWhoamiCache = 10000

func newWhoamiBinder(url, cookie, userField string, client *http.Client) *whoamiBinder {
	return &whoamiBinder{url: url, cookie: cookie, userField: userField, client: client, cache: map[[32]byte]whoamiEntry{}}
}

// User returns the app user ("store:name") of the request's session. The
// app is asked with exactly what the cache is keyed on: the one session
// cookie and the Authorization header, if any (an app may prefer either).
func (b *whoamiBinder) User(ctx context.Context, r *http.Request) (string, error) {
	value, err := sessionCookie(r, b.cookie)
	if err != nil {
		return "", err
	}
	auth := r.Header.Values("Authorization")
	if len(auth) > 1 {
		return "", errAmbiguousSession
	}
	h := sha256.New()
	h.Write([]byte(value))
	for _, a := range auth {
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	var key [32]byte
	h.Sum(key[:0])
	now := time.Now()
	b.mu.Lock()
	e, ok := b.cache[key]
	b.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.user, nil
	}
	user, err := b.ask(ctx, value, auth)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	if len(b.cache) >= maxWhoamiCache {
		clear(b.cache) // bounded: a flood of sessions costs lookups, not memory
	}
	b.cache[key] = whoamiEntry{user: user, expires: now.Add(whoamiTTL)}
	b.mu.Unlock()
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
