package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/testpki"
)

// secretLog is the gateway's log, read while it writes.
type secretLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *secretLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *secretLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsNotLoggedHeaderBinding: the gateway with header binding, at
// debug level, serves allowed, refused, ambiguous and malformed requests
// carrying session cookies and a bearer token; its log holds neither the
// HMAC key of the binding (raw, hex, base64), nor the cookies and token,
// nor the device's private key. (cmd/devicegate's TestSecretsNotLogged
// runs the whole demo flow with the whoami binding.)
func TestSecretsNotLoggedHeaderBinding(t *testing.T) {
	logs := &secretLog{}
	keyFile := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(testHMACKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, time.Minute, func(u *config.Upstream) {
		u.Binding = config.Binding{Mode: "header", HMACKeyFile: keyFile}
	}, func(o *Options) {
		o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	cert := e.device("alice", testpki.LeafOptions{})
	const cookie, bearer = "SessionCookieValue-7f3a9c1e5b", "BearerTokenValue-2d8e4f6a0c"
	send := func(c *http.Client, path string, h http.Header) int {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	withCookie := http.Header{"Cookie": {"bo_session=" + cookie}, "Authorization": {"Bearer " + bearer}}
	if st := send(e.client(&cert), "/signed/x", withCookie); st != http.StatusOK {
		t.Fatalf("allowed request: %d", st)
	}
	send(e.client(nil), "/signed/x", withCookie)
	send(e.client(&cert), "/orders/sold", http.Header{"Cookie": {"bo_session=" + cookie + "; bo_session=" + cookie + "2"}})
	send(e.client(&cert), "/signed/x", http.Header{"X-Devicegate-Signature": {bearer}, "Cookie": {"bo_session=" + cookie}})
	raw := e.dialRaw(t, &cert)
	raw.send("POST /products HTTP/1.1\r\nHost: localhost\r\nCookie: bo_session=" + cookie + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + bearer + "\r\n")
	raw.read("POST")

	log := logs.String()
	if !strings.Contains(log, "level=") {
		t.Fatal("the gateway logged nothing")
	}
	secrets := map[string][]string{
		"HMAC key":     {string(testHMACKey), hex.EncodeToString(testHMACKey), base64.StdEncoding.EncodeToString(testHMACKey), base64.RawURLEncoding.EncodeToString(testHMACKey)},
		"cookie":       {cookie},
		"bearer token": {bearer},
	}
	if k, ok := cert.PrivateKey.(*ecdsa.PrivateKey); ok {
		if d, err := k.Bytes(); err == nil {
			secrets["device key"] = []string{hex.EncodeToString(d), base64.StdEncoding.EncodeToString(d)}
		}
	}
	for what, forms := range secrets {
		for _, f := range forms {
			if i := strings.Index(log, f); i >= 0 {
				t.Errorf("the gateway's log leaks the %s (%q): %q", what, f, log[max(0, i-200):min(len(log), i+len(f)+40)])
			}
		}
	}
	t.Logf("%d bytes of gateway log searched", len(log))
}
