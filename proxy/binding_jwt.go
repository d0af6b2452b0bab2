package proxy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"
)

// sessionBinder tells which app user ("store:name") a request's session
// belongs to.
type sessionBinder interface {
	User(ctx context.Context, r *http.Request) (string, error)
}

// maxJWTBytes bounds a token before it is parsed.
const maxJWTBytes = 8 << 10

// jwtBinder verifies the app's own JWT (cookie or bearer) with the app's
// public key and reads the user from a claim.
type jwtBinder struct {
	key      crypto.PublicKey
	algs     map[string]bool // algorithms this key type may sign with
	cookie   string
	claim    string
	issuer   string
	audience string
}

func newJWTBinder(keyFile, cookie, claim, issuer, audience string) (*jwtBinder, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	key, err := pemutil.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	b := &jwtBinder{key: key, cookie: cookie, claim: claim, issuer: issuer, audience: audience}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		alg, ok := map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}[k.Curve.Params().BitSize]
		if !ok {
			return nil, fmt.Errorf("%s: unsupported curve", keyFile)
		}
		b.algs = map[string]bool{alg: true}
	case *rsa.PublicKey:
		b.algs = map[string]bool{"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true}
	case ed25519.PublicKey:
		b.algs = map[string]bool{"EdDSA": true}
	default:
		return nil, fmt.Errorf("%s: a public key (EC, RSA or Ed25519) is required", keyFile)
	}
	return b, nil
}

// token takes the JWT from the configured cookie or an Authorization
// bearer header.
func (b *jwtBinder) token(r *http.Request) string {
	if b.cookie != "" {
		if c, err := r.Cookie(b.cookie); err == nil {
			return c.Value
		}
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return v
	}
	return ""
}

// User verifies the token (algorithm fixed by the key type, signature,
// exp required, nbf, issuer, audience) and returns the user claim.
func (b *jwtBinder) User(_ context.Context, r *http.Request) (string, error) {
	raw := b.token(r)
	if raw == "" || len(raw) > maxJWTBytes {
		return "", errNotLoggedIn
	}
	tok, err := jose.ParseSigned(raw)
	if err != nil || len(tok.Headers) != 1 || !b.algs[tok.Headers[0].Algorithm] {
		return "", errNotLoggedIn
	}
	var claims jose.Claims
	extra := map[string]any{}
	if err := tok.Claims(b.key, &claims, &extra); err != nil {
		return "", errNotLoggedIn
	}
	if claims.Expiry == nil {
		return "", errNotLoggedIn
	}
	expected := jose.Expected{Issuer: b.issuer, Time: time.Now()}
	if b.audience != "" {
		expected.Audience = jose.Audience{b.audience}
	}
	if err := claims.ValidateWithLeeway(expected, 30*time.Second); err != nil {
		return "", errNotLoggedIn
	}
	user, _ := extra[b.claim].(string)
	if user == "" {
		return "", errors.Join(errNotLoggedIn, fmt.Errorf("claim %q missing", b.claim))
	}
	return user, nil
}
