package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPasswordHashVerify(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("hash %q is not argon2id", h)
	}
	tests := []struct {
		pw   string
		want bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
		{strings.Repeat("x", 2000), false},
	}
	for _, tc := range tests {
		ok, err := VerifyPassword(h, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, pw := range []string{"", "short", strings.Repeat("y", 1025)} {
		if _, err := HashPassword(pw); err == nil {
			t.Errorf("HashPassword(%d chars) accepted", len(pw))
		}
	}
}

func TestVerifyRejectsBadHashes(t *testing.T) {
	for _, h := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=999999999,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=65536,t=2,p=2$!!$AAAA"} {
		if ok, err := VerifyPassword(h, "whatever-password"); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want error", h, ok, err)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "seal.key")
	k1, err := LoadOrCreateKey(p)
	if err != nil || len(k1) != KeyLen {
		t.Fatalf("create: %v (%d bytes)", err, len(k1))
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("reload gave another key: %v", err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(p); err == nil {
		t.Fatal("world-readable key accepted")
	}
}

func TestRandomPassword(t *testing.T) {
	a, b := RandomPassword(), RandomPassword()
	if len(a) != 20 || a == b {
		t.Fatalf("RandomPassword: %q %q", a, b)
	}
	if _, err := HashPassword(a); err != nil {
		t.Fatal(err)
	}
}
