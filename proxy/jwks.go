package proxy

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.step.sm/crypto/jose"
)

// errUnknownKey: no key has the token's key id (after a refresh).
var errUnknownKey = errors.New("no key with this key id")

// JWKS refresh policy: keys are refetched after jwksRefresh, an unknown key
// id (the app rotated its keys) triggers at most one fetch per
// jwksMinRefetch, and without a successful fetch for jwksMaxAge the binding
// fails closed.
const (
	jwksRefresh    = 10 * time.Minute
	jwksMinRefetch = 30 * time.Second
	jwksMaxAge     = time.Hour
	maxJWKSBytes   = 64 << 10
)

// jwks is the app's JSON Web Key Set, fetched from its URL and cached.
type jwks struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	keys    map[string]jwksKey // by key id; "" for the only key of a one-key set
	fetched time.Time          // last successful fetch
	tried   time.Time          // last attempt
	now     func() time.Time
}

type jwksKey struct {
	pub  crypto.PublicKey
	algs map[string]bool
}

func newJWKS(url string, client *http.Client) (*jwks, error) {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &jwks{url: url, client: client, now: time.Now}, nil
}

func (j *jwks) key(ctx context.Context, kid string) (crypto.PublicKey, map[string]bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	k, ok := j.keys[kid]
	if (!ok || now.Sub(j.fetched) > jwksRefresh) && now.Sub(j.tried) >= jwksMinRefetch {
		j.tried = now
		if err := j.fetchLocked(ctx); err != nil {
			if now.Sub(j.fetched) > jwksMaxAge {
				return nil, nil, err
			}
			// Keep the keys we have until they are too old.
		}
		k, ok = j.keys[kid]
	}
	if now.Sub(j.fetched) > jwksMaxAge {
		return nil, nil, fmt.Errorf("JWKS %s: no successful fetch for over %v", j.url, jwksMaxAge)
	}
	if !ok {
		return nil, nil, errUnknownKey
	}
	return k.pub, k.algs, nil
}

// fetchLocked replaces the keys with the URL's current set. Private and
// symmetric keys are never used (a symmetric "oct" key would let anyone
// who can read the set sign tokens).
func (j *jwks) fetchLocked(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS %s: HTTP %d", j.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", j.url, err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("JWKS %s: larger than %d bytes", j.url, maxJWKSBytes)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", j.url, err)
	}
	j.keys, j.fetched = keys, j.now()
	return nil
}

// parseJWKS keeps the usable signature keys of a set, by key id.
func parseJWKS(body []byte) (map[string]jwksKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	keys := map[string]jwksKey{}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		algs, err := algorithmsFor(k.Key)
		if err != nil {
			continue
		}
		if k.Algorithm != "" {
			if !algs[k.Algorithm] {
				continue
			}
			algs = map[string]bool{k.Algorithm: true}
		}
		keys[k.KeyID] = jwksKey{pub: k.Key, algs: algs}
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable public signature key")
	}
	if len(keys) == 1 {
		for _, k := range keys {
			keys[""] = k // a token without "kid" may use the only key
		}
	}
	return keys, nil
}
