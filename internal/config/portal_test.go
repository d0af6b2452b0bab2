package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOwnerConsoleConfig: the owner console's listener is its own (never
// the staff listener) and its URL is https and only with it.
func TestOwnerConsoleConfig(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"same as the staff listener", "portal:\n  listen: 127.0.0.1:8444\n  owner_listen: 127.0.0.1:8444\n", "portal.owner_listen"},
		{"public without opt-in", "portal:\n  owner_listen: 0.0.0.0:8445\n", "allow_public_listen"},
		{"url without listener", "portal:\n  owner_url: https://owner.example/\n", "portal.owner_url"},
		{"plain http url", "portal:\n  owner_listen: 127.0.0.1:8445\n  owner_url: http://owner.example/\n", "portal.owner_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.yaml), "/tmp"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	c, err := Parse([]byte("portal:\n  owner_listen: 127.0.0.1:8445\n  owner_url: https://owner.example:8445/\n"), "/tmp")
	if err != nil || c.Portal.OwnerListen != "127.0.0.1:8445" || c.Portal.OwnerURL != "https://owner.example:8445/" {
		t.Fatalf("owner console config: %+v %v", c.Portal, err)
	}
}

// TestVerifyCallbackKeyFileConfig: the verification callback key is read
// from a file (relative to the config), checked by check-config (exists,
// mode 0600, 32 hex bytes), and never appears in an error.
func TestVerifyCallbackKeyFileConfig(t *testing.T) {
	dir := t.TempDir()
	const key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("good.key", key+"\n", 0o600)
	write("open.key", key, 0o644)
	write("short.key", key[:40], 0o600)
	for _, tc := range []struct{ name, file, want string }{
		{"missing", "none.key", "portal.verify_callback_key_file"},
		{"readable by others", "open.key", "chmod 600"},
		{"too short", "short.key", "hex-encoded bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("portal:\n  verify_callback_key_file: "+tc.file+"\n"), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key[:16]) {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
	c, err := Parse([]byte("portal:\n  verify_callback_key_file: good.key\n"), dir)
	if err != nil || c.Portal.VerifyCallbackKeyFile != filepath.Join(dir, "good.key") {
		t.Fatalf("good key file: %+v %v", c.Portal, err)
	}
}
