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
// public key (a file, or a JWKS URL) and reads the user from a claim.
type jwtBinder struct {
	keys     keySource
	cookie   string
	claim    string
	issuer   string
	audience string
}

// keySource finds the verification key of a token by its key id and says
// which algorithms that key may sign with (fixed by the key type: no
// algorithm confusion).
type keySource interface {
	key(ctx context.Context, kid string) (crypto.PublicKey, map[string]bool, error)
}

// fileKey is one PEM public key; key ids are ignored.
type fileKey struct {
	pub  crypto.PublicKey
	algs map[string]bool
}

func (f fileKey) key(context.Context, string) (crypto.PublicKey, map[string]bool, error) {
	return f.pub, f.algs, nil
}

// algorithmsFor lists the JWS algorithms a public key may verify.
func algorithmsFor(key crypto.PublicKey) (map[string]bool, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		alg, ok := map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}[k.Curve.Params().BitSize]
		if !ok {
			return nil, errors.New("unsupported curve")
		}
		return map[string]bool{alg: true}, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA keys need at least 2048 bits")
		}
		return map[string]bool{"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true}, nil
	case ed25519.PublicKey:
		return map[string]bool{"EdDSA": true}, nil
	}
	return nil, errors.New("a public key (EC, RSA or Ed25519) is required")
}

func newFileKey(keyFile string) (fileKey, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return fileKey{}, err
	}
	key, err := pemutil.ParseKey(data)
	if err != nil {
		return fileKey{}, fmt.Errorf("%s: %w", keyFile, err)
	}
	algs, err := algorithmsFor(key)
	if err != nil {
		return fileKey{}, fmt.Errorf("%s: %w", keyFile, err)
	}
	return fileKey{pub: key, algs: algs}, nil
}

func newJWTBinder(keys keySource, cookie, claim, issuer, audience string) *jwtBinder {
	return &jwtBinder{keys: keys, cookie: cookie, claim: claim, issuer: issuer, audience: audience}
}

// token takes the JWT from the configured cookie or an Authorization
// bearer header. A request with both, or with two of either, is
// ambiguous: the app may read another token than the one checked here.
func (b *jwtBinder) token(r *http.Request) (string, error) {
	auth := r.Header.Values("Authorization")
	if len(auth) > 1 {
		return "", errAmbiguousSession
	}
	if b.cookie != "" && countCookies(r, b.cookie) > 0 {
		if len(auth) > 0 {
			return "", errAmbiguousSession
		}
		return sessionCookie(r, b.cookie)
	}
	if len(auth) == 1 {
		if v, ok := strings.CutPrefix(auth[0], "Bearer "); ok {
			return v, nil
		}
	}
	return "", errNotLoggedIn
}

// User verifies the token (algorithm fixed by the key type, signature,
// exp required, nbf, issuer, audience) and returns the user claim.
func (b *jwtBinder) User(ctx context.Context, r *http.Request) (string, error) {
	raw, err := b.token(r)
	if err != nil {
		return "", err
	}
	if raw == "" || len(raw) > maxJWTBytes {
		return "", errNotLoggedIn
	}
	tok, err := jose.ParseSigned(raw)
	if err != nil || len(tok.Headers) != 1 {
		return "", errNotLoggedIn
	}
	key, algs, err := b.keys.key(ctx, tok.Headers[0].KeyID)
	if errors.Is(err, errUnknownKey) {
		return "", errNotLoggedIn
	}
	if err != nil {
		return "", err // the key source is down: binding failed, not a login problem
	}
	if !algs[tok.Headers[0].Algorithm] {
		return "", errNotLoggedIn
	}
	var claims jose.Claims
	extra := map[string]any{}
	if err := tok.Claims(key, &claims, &extra); err != nil {
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
