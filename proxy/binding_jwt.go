package proxy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"
)

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
	now      func() time.Time
	// verified keeps the user of each token verified in the last
	// sessionCacheTTL (within the token's own validity): an ES256
	// verification cost ~200 µs of CPU per high-risk request, more than
	// the rest of the request's way through the gateway.
	verified *sessionCache
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

func newJWTBinder(keys keySource, cookie, claim, issuer, audience string, now func() time.Time) *jwtBinder {
	return &jwtBinder{keys: keys, cookie: cookie, claim: claim, issuer: issuer, audience: audience, now: now, verified: newSessionCache()}
}

// token takes the JWT from the configured cookie or an Authorization
// bearer header. A request with both, or with two of either, is
// ambiguous: the app may read another token than the one checked here.
func (b *jwtBinder) token(in sessionInput) (string, error) {
	auth := in.auth
	if len(auth) > 1 {
		return "", errAmbiguousSession
	}
	if b.cookie != "" && countCookies(in.cookies, b.cookie) > 0 {
		if len(auth) > 0 {
			return "", errAmbiguousSession
		}
		return sessionCookie(in.cookies, b.cookie)
	}
	if len(auth) == 1 {
		if v, ok := strings.CutPrefix(auth[0], "Bearer "); ok {
			return v, nil
		}
	}
	return "", errNotLoggedIn
}

// jwtLeeway is the clock skew allowed on exp, nbf and iat.
const jwtLeeway = 30 * time.Second

// User verifies the token (algorithm fixed by the key type, signature,
// exp required, nbf, issuer, audience) and returns the user claim. A token
// verified before is not verified again within sessionCacheTTL, but its
// own time limits are checked on every use.
func (b *jwtBinder) User(ctx context.Context, in sessionInput) (string, error) {
	raw, err := b.token(in)
	if err != nil {
		return "", err
	}
	if raw == "" || len(raw) > maxJWTBytes {
		return "", errNotLoggedIn
	}
	now := b.now()
	key := sessionKey(raw)
	if user, ok := b.verified.get(key, now); ok {
		return user, nil
	}
	user, valid, err := b.verify(ctx, raw, now)
	if err != nil {
		return "", err
	}
	if limit := now.Add(sessionCacheTTL); valid.until.After(limit) {
		valid.until = limit
	}
	valid.user = user
	b.verified.put(key, valid)
	return user, nil
}

// verify checks raw at now and returns its user and the time in which
// the token stays valid.
func (b *jwtBinder) verify(ctx context.Context, raw string, now time.Time) (string, sessionEntry, error) {
	var none sessionEntry
	tok, err := jose.ParseSigned(raw)
	if err != nil || len(tok.Headers) != 1 {
		return "", none, errNotLoggedIn
	}
	key, algs, err := b.keys.key(ctx, tok.Headers[0].KeyID)
	if errors.Is(err, errUnknownKey) {
		return "", none, errNotLoggedIn
	}
	if err != nil {
		return "", none, err // the key source is down: binding failed, not a login problem
	}
	if !algs[tok.Headers[0].Algorithm] {
		return "", none, errNotLoggedIn
	}
	var claims jose.Claims
	extra := map[string]any{}
	if err := tok.Claims(key, &claims, &extra); err != nil {
		return "", none, errNotLoggedIn
	}
	if claims.Expiry == nil {
		return "", none, errNotLoggedIn
	}
	expected := jose.Expected{Issuer: b.issuer, Time: now}
	if b.audience != "" {
		expected.Audience = jose.Audience{b.audience}
	}
	if err := claims.ValidateWithLeeway(expected, jwtLeeway); err != nil {
		return "", none, errNotLoggedIn
	}
	user, _ := extra[b.claim].(string)
	if user == "" {
		return "", none, errors.Join(errNotLoggedIn, fmt.Errorf("claim %q missing", b.claim))
	}
	valid := sessionEntry{until: claims.Expiry.Time().Add(jwtLeeway)}
	for _, t := range []*jose.NumericDate{claims.NotBefore, claims.IssuedAt} {
		if t != nil && t.Time().Add(-jwtLeeway).After(valid.from) {
			valid.from = t.Time().Add(-jwtLeeway)
		}
	}
	return user, valid, nil
}
