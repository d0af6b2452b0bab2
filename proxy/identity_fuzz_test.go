package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
)

// FuzzVerifyIdentity: identity headers signed for one request verify for
// exactly that request; changing any signed field (sub-account, device,
// permission, method, path) makes them fail.
func FuzzVerifyIdentity(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add("shop:alice", "dev1", "orders.sold", "GET", "/orders/sold")
	f.Add("shop:bob", "dev1", "orders.sold", "GET", "/orders/sold")
	f.Add("shop:alice", "dev1", "", "POST", "/orders/sold/")
	f.Fuzz(func(t *testing.T, sub, device, perm, method, path string) {
		for _, v := range []string{sub, device, perm, method, path} {
			if strings.ContainsAny(v, "\r\n") {
				return // no HTTP header or request line can carry these
			}
		}
		const signedSub, signedDev, signedPerm, signedMethod, signedPath = "shop:alice", "dev1", "orders.sold", "GET", "/orders/sold"
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		r, err := http.NewRequest(http.MethodGet, "http://app.example/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Method, r.URL.Path, r.URL.RawPath = method, path, ""
		if r.URL.EscapedPath() != path {
			return // the path would reach the app in another form
		}
		r.Header.Set(HeaderSubaccount, sub)
		r.Header.Set(HeaderDeviceID, device)
		r.Header.Set(HeaderPermission, perm)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderSignature, signature(key, signedSub, signedDev, signedPerm, signedMethod, signedPath, ts))
		gotSub, gotDev, err := VerifyIdentity(key, r, time.Minute)
		same := sub == signedSub && device == signedDev && perm == signedPerm && method == signedMethod && path == signedPath
		if same != (err == nil) {
			t.Fatalf("%q %q %q %q %q: verified=%v (%v), signed for other values=%v", sub, device, perm, method, path, err == nil, err, !same)
		}
		if err == nil && (gotSub != signedSub || gotDev != signedDev) {
			t.Fatalf("verified as %q %q", gotSub, gotDev)
		}
	})
}

// FuzzJWTUser: a token gives a user only when it is signed by the app's
// key with the key's algorithm and is unexpired; anything else is no
// session (never a panic, never a user from an unverified token).
func FuzzJWTUser(f *testing.F) {
	appKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: appKey}, nil)
	if err != nil {
		f.Fatal(err)
	}
	good, err := jose.Signed(sig).Claims(jose.Claims{Subject: "shop:alice", Expiry: jose.NewNumericDate(time.Now().Add(time.Hour))}).CompactSerialize()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzaG9wOmFsaWNlIn0.")
	f.Add(good[:len(good)-4] + "AAAA")
	f.Add("a.b.c")
	f.Add("")
	algs, err := algorithmsFor(&appKey.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	b := newJWTBinder(fileKey{pub: &appKey.PublicKey, algs: algs}, "", "sub", "", "", time.Now)
	f.Fuzz(func(t *testing.T, token string) {
		r, _ := http.NewRequest(http.MethodGet, "http://app.example/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		user, err := b.User(t.Context(), sessionOf(r.Header))
		if err != nil {
			if user != "" {
				t.Fatalf("user %q with error %v", user, err)
			}
			return
		}
		tok, perr := jose.ParseSigned(token)
		if perr != nil || len(tok.Headers) != 1 || tok.Headers[0].Algorithm != "ES256" {
			t.Fatalf("%q: user %q from a token that does not parse as ES256 (%v)", token, user, perr)
		}
		var claims jose.Claims
		if err := tok.Claims(&appKey.PublicKey, &claims); err != nil || claims.Subject != user {
			t.Fatalf("%q: user %q from a token the key does not verify (%v)", token, user, err)
		}
	})
}
