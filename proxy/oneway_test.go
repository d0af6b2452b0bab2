package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
)

// headerEchoApp is an upstream that is not ours: it answers every request
// (a WebSocket upgrade with 101) with the headers it received in
// X-Echo (so HEAD and upgrades show them too).
func headerEchoApp(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(r.Header)
	if r.Header.Get("Upgrade") == "websocket" {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Echo: " + string(b) + "\r\n\r\n")
		brw.Flush()
		return
	}
	w.Header().Set("X-Echo", string(b))
	_, _ = io.Copy(io.Discard, r.Body)
}

// gatewayAdded is the part of what an upstream received that the gateway
// writes itself (and the client's spoofed copies would land in).
func gatewayAdded(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-forwarded-") || strings.HasPrefix(lk, "x-devicegate-") || strings.HasPrefix(lk, "client-cert") {
			out[k] = strings.Join(v, " | ")
		}
	}
	return out
}

// newJWTEnvFor is newJWTEnv in front of the app at url, tuned by tune.
func newJWTEnvFor(t *testing.T, url string, tune ...func(*Options)) (*env, func(user string) string) {
	appKey := testpki.NewKey(t, testpki.P256)
	keyFile := filepath.Join(t.TempDir(), "app.pub")
	der, _ := x509.MarshalPKIXPublicKey(appKey.Public())
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.URL = url
		u.Binding = config.Binding{Mode: "jwt", JWTKeyFile: keyFile, JWTCookie: "app_jwt", JWTClaim: "sub"}
	}, tune...)
	return e, func(user string) string { return signJWT(t, appKey, jose.ES256, user, time.Hour) }
}

// TestEveryWayAddsTheSameHeaders: whichever way a request takes through the
// gateway (fast path, net/http with the direct forwarder, ReverseProxy for
// bodies and upgrades, HTTP/2, an https upstream), the upstream receives the
// same gateway headers with the same values, and none of the client's
// spoofed ones.
func TestEveryWayAddsTheSameHeaders(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(headerEchoApp))
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(http.HandlerFunc(headerEchoApp))
	t.Cleanup(secure.Close)
	e, sign := newJWTEnvFor(t, plain.URL)
	es, signS := newJWTEnvFor(t, secure.URL, func(o *Options) { o.Transport = secure.Client().Transport })

	spoofed := "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Prefix: /evil\r\n" +
		"X-Devicegate-Subaccount: shop:boss\r\nX-Devicegate-Permission: members\r\nClient-Cert: :AAAA:\r\n"
	ways := []struct {
		name      string
		env       *env
		sign      func(string) string
		head      string // request line and extra header lines
		body      string
		fast      bool // the fast path answers it
		upgrading bool
	}{
		{"fast path GET", e, sign, "GET /orders/sold HTTP/1.1\r\n", "", true, false},
		{"fast path HEAD", e, sign, "HEAD /orders/sold HTTP/1.1\r\n", "", true, false},
		{"net/http GET (direct forwarder)", e, sign, "GET /orders/sold HTTP/1.1\r\nConnection: X-Other\r\n", "", false, false},
		{"POST with body (ReverseProxy)", e, sign, "POST /orders/sold HTTP/1.1\r\nContent-Type: text/plain\r\n", "a=1", false, false},
		{"WebSocket upgrade (ReverseProxy)", e, sign, "GET /orders/sold HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", "", false, true},
		{"https upstream GET", es, signS, "GET /orders/sold HTTP/1.1\r\n", "", false, false},
	}
	certs := map[*env]tls.Certificate{e: e.device("alice", testpki.LeafOptions{}), es: es.device("alice", testpki.LeafOptions{})}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			alice := certs[w.env]
			req := w.head + "Host: localhost\r\nCookie: app_jwt=" + w.sign("shop:alice") + "\r\n" + spoofed
			if w.body != "" || strings.HasPrefix(w.head, "POST") {
				req += fmt.Sprintf("Content-Length: %d\r\n", len(w.body))
			}
			req += "\r\n" + w.body
			handedOff := w.env.srv.handedOff.Load()
			resp := w.env.rawExchange(t, &alice, req)
			resp.Body.Close()
			want := http.StatusOK
			if w.upgrading {
				want = http.StatusSwitchingProtocols
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, resp.Header.Get("X-Devicegate-Reason"), want)
			}
			var got http.Header
			if err := json.Unmarshal([]byte(resp.Header.Get("X-Echo")), &got); err != nil {
				t.Fatalf("X-Echo: %v", err)
			}
			added := gatewayAdded(got)
			expected := map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "localhost", "X-Forwarded-Proto": "https",
				"X-Devicegate-Subaccount": "shop:alice", "X-Devicegate-Device-Id": w.env.devices["alice"].ID,
				"X-Devicegate-Permission": "orders.sold",
			}
			if fmt.Sprint(added) != fmt.Sprint(expected) {
				t.Errorf("upstream got %v\nwant           %v", added, expected)
			}
			// (counted before net/http answers; fastServed only after the answer)
			if fast := w.env.srv.handedOff.Load() == handedOff; fast != w.fast {
				t.Errorf("served by the fast path: %v, want %v", fast, w.fast)
			}
		})
	}
	// HTTP/2 (net/http and the direct forwarder), through Go's client.
	alice, cert := e.devices["alice"], certs[e]
	req, _ := http.NewRequest(http.MethodGet, e.url+"/orders/sold", nil)
	req.Header.Set("Cookie", "app_jwt="+sign("shop:alice"))
	req.Header.Set("X-Forwarded-Prefix", "/evil")
	req.Header.Set("X-Devicegate-Subaccount", "shop:boss")
	resp, err := e.clientProto(&cert, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("h2: %s %d", resp.Proto, resp.StatusCode)
	}
	var got http.Header
	_ = json.Unmarshal([]byte(resp.Header.Get("X-Echo")), &got)
	added := gatewayAdded(got)
	if added["X-Devicegate-Subaccount"] != "shop:alice" || added["X-Devicegate-Device-Id"] != alice.ID ||
		added["X-Forwarded-Prefix"] != "" || added["X-Forwarded-For"] != "127.0.0.1" || len(added) != 6 {
		t.Errorf("h2: upstream got %v", added)
	}
}

// TestFastPathDecidesSessionBindings: with jwt and whoami binding an
// allowed high-risk request is served on the fast path, and a refused one
// (another sub-account's session) still gets the refusal page and its
// audit entry from net/http.
func TestFastPathDecidesSessionBindings(t *testing.T) {
	app := &lastWinsApp{sessions: map[string]string{"tok-alice": "shop:alice", "tok-bob": "shop:bob"}}
	up := httptest.NewServer(app)
	t.Cleanup(up.Close)
	jwtEnv, sign := newJWTEnvFor(t, up.URL)
	whoamiEnv := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.URL = up.URL
		u.Binding = config.Binding{Mode: "whoami", WhoamiURL: up.URL + "/whoami", SessionCookie: "sid", UserField: "user"}
	})
	cases := []struct {
		name       string
		env        *env
		alice, bob string // Cookie header values of each one's session
		body       string // what the app answers alice
	}{
		// The app reads only its sid cookie (the JWT is the gateway's to check).
		{"jwt", jwtEnv, "app_jwt=" + sign("shop:alice"), "app_jwt=" + sign("shop:bob"), "orders of "},
		{"whoami", whoamiEnv, "sid=tok-alice", "sid=tok-bob", "orders of shop:alice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alice := c.env.device("alice", testpki.LeafOptions{})
			conn := c.env.dialRaw(t, &alice)
			before := c.env.srv.handedOff.Load()
			for range 3 {
				conn.send("GET /orders/sold HTTP/1.1\r\nHost: localhost\r\nCookie: " + c.alice + "\r\n\r\n")
				if status, reason, body := conn.read("GET"); status != http.StatusOK || body != c.body {
					t.Fatalf("alice's own session: %d %q %q", status, reason, body)
				}
			}
			if c.env.srv.handedOff.Load() != before {
				t.Fatal("an allowed request left the fast path")
			}
			// Alice's device with Bob's session: refused, on net/http.
			conn.send("GET /orders/sold HTTP/1.1\r\nHost: localhost\r\nCookie: " + c.bob + "\r\n\r\n")
			if status, reason, _ := conn.read("GET"); status != http.StatusForbidden || reason != ReasonSessionMismatch.String() {
				t.Fatalf("bob's session on alice's device: %d %q", status, reason)
			}
			if c.env.srv.handedOff.Load() == before {
				t.Fatal("the refusal did not go to net/http")
			}
		})
	}
}
