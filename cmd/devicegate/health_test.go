package main

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/internal/testpki"
)

// `devicegate health` (the image's HEALTHCHECK) passes only when every URL
// answers 2xx over a certificate that verifies against --root; a server
// certificate of another CA, an error status, a dead port or a URL that is
// not http(s) is unhealthy, never skipped.
func TestHealthCommand(t *testing.T) {
	pki, other := testpki.New(t), testpki.New(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.ServerCert(t, "localhost", "127.0.0.1")}}
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	writeRoot := func(name string, p *testpki.PKI) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root.Raw}), 0o644)
		return path
	}
	root, otherRoot := writeRoot("root.pem", pki), writeRoot("other.pem", other)
	dead := "http://" + freePort(t) + "/"
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"2xx over a verified certificate", []string{"--root", root, srv.URL + "/healthz"}, true},
		{"server certificate of another CA", []string{"--root", otherRoot, srv.URL + "/healthz"}, false},
		{"no root: the system's do not know it", []string{srv.URL + "/healthz"}, false},
		{"error status", []string{"--root", root, srv.URL + "/other"}, false},
		{"one of two fails", []string{"--root", root, srv.URL + "/healthz", srv.URL + "/other"}, false},
		{"nothing listens", []string{dead}, false},
		{"not http(s)", []string{"--root", root, "ftp://localhost/"}, false},
		{"nothing to check", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(healthURLsEnv, "")
			t.Setenv(healthRootEnv, "")
			code, out, errOut := cli(t, append([]string{"health"}, tc.args...)...)
			if (code == 0) != tc.ok {
				t.Fatalf("exit %d, want ok=%v\n%s%s", code, tc.ok, out, errOut)
			}
		})
	}
	// Without arguments: the URLs and the root from the environment.
	t.Setenv(healthURLsEnv, srv.URL+"/healthz")
	t.Setenv(healthRootEnv, root)
	if code, out, errOut := cli(t, "health"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("health from the environment: exit %d\n%s%s", code, out, errOut)
	}
}

// The back-office users file: "store:name password" lines; a malformed
// line is refused by its number, without echoing the line (a password).
func TestBackofficeUsersFile(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		users         int
	}{
		{"two users, a comment and a blank line", "# demo\nshop:kim pw-one\n\nshop:lee pw two\n", 2},
		{"no password", "shop:kim\n", 0},
		{"no store", "kim secret-pw\n", 0},
		{"empty", "# nobody\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users")
			os.WriteFile(path, []byte(tc.content), 0o600)
			users, err := readBackofficeUsers(path)
			if tc.users == 0 {
				if err == nil || strings.Contains(err.Error(), "secret-pw") {
					t.Fatalf("users %v, err %v: want an error that does not name the password", users, err)
				}
				return
			}
			if err != nil || len(users) != tc.users || users[1].Password != "pw two" {
				t.Fatalf("users %+v, err %v", users, err)
			}
		})
	}
}
