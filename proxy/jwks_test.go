package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/devicegate/devicegate/internal/testpki"
)

// signKid is signJWT with a key id in the header.
func signKid(t *testing.T, key any, alg jose.SignatureAlgorithm, kid, user string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jose.Signed(sig).Claims(jose.Claims{Subject: user, Expiry: jose.NewNumericDate(now.Add(time.Hour))}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A JWKS URL as the key source: the app's keys by key id, rotation picked
// up, symmetric and private keys in the set never used, and a set that
// cannot be fetched for too long fails closed.
func TestJWKSBinding(t *testing.T) {
	k1, k2, other := testpki.NewKey(t, testpki.P256), testpki.NewKey(t, testpki.P256), testpki.NewKey(t, testpki.P256)
	secret := []byte("0123456789abcdef0123456789abcdef")
	var current atomic.Value
	set := func(keys ...jose.JSONWebKey) []byte {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		return b
	}
	current.Store(set(
		jose.JSONWebKey{Key: k1.Public(), KeyID: "k1", Use: "sig"},
		jose.JSONWebKey{Key: secret, KeyID: "hs", Algorithm: "HS256"},
		jose.JSONWebKey{Key: other, KeyID: "priv"}, // a private key published by mistake
	))
	var down atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write(current.Load().([]byte))
	}))
	defer srv.Close()
	keys, _ := newJWKS(srv.URL, srv.Client())
	clock := time.Now()
	keys.now = func() time.Time { return clock }
	b := newJWTBinder(keys, "", "sub", "", "", time.Now)
	user := func(token string) (string, error) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return b.User(context.Background(), sessionOf(r.Header))
	}

	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"token of key k1", signKid(t, k1, jose.ES256, "k1", "shop:alice"), "shop:alice"},
		{"k1's id, another key's signature", signKid(t, other, jose.ES256, "k1", "shop:alice"), ""},
		{"the published symmetric key", signKid(t, secret, jose.HS256, "hs", "shop:alice"), ""},
		{"the published private key", signKid(t, other, jose.ES256, "priv", "shop:alice"), ""},
		{"unknown key id", signKid(t, k2, jose.ES256, "k2", "shop:alice"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := user(tc.token)
			if tc.want != "" && (err != nil || got != tc.want) {
				t.Fatalf("%q %v, want %q", got, err, tc.want)
			}
			if tc.want == "" && !errors.Is(err, errNotLoggedIn) {
				t.Fatalf("accepted (%q, %v)", got, err)
			}
		})
	}

	// The app rotates to k2: picked up on the next unknown id after the
	// minimum refetch interval.
	current.Store(set(jose.JSONWebKey{Key: k2.Public(), KeyID: "k2"}))
	clock = clock.Add(jwksMinRefetch)
	if got, err := user(signKid(t, k2, jose.ES256, "k2", "shop:bob")); err != nil || got != "shop:bob" {
		t.Fatalf("after rotation: %q %v", got, err)
	}
	// A one-key set also verifies tokens without a key id.
	if got, err := user(signJWT(t, k2, jose.ES256, "shop:bob", time.Hour)); err != nil || got != "shop:bob" {
		t.Fatalf("no kid, one key: %q %v", got, err)
	}
	// The JWKS goes away: cached keys keep working for a while, then the
	// binding fails closed (an error, not a login problem).
	down.Store(true)
	clock = clock.Add(jwksRefresh + time.Second)
	if _, err := user(signKid(t, k2, jose.ES256, "k2", "shop:bob")); err != nil {
		t.Fatalf("cached key while the JWKS is down: %v", err)
	}
	clock = clock.Add(jwksMaxAge)
	if _, err := user(signKid(t, k2, jose.ES256, "k2", "shop:bob")); err == nil || errors.Is(err, errNotLoggedIn) {
		t.Fatalf("JWKS down past max age: %v, want a binding failure", err)
	}
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"a"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		for _, k := range keys {
			if _, err := algorithmsFor(k.pub); err != nil {
				t.Fatalf("unusable key kept: %v", err)
			}
		}
	})
}
