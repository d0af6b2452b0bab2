package ca

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitWritesPrivateKeysAndRunsWithoutRootKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(dir, InitOptions{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{RootKeyFile, DeviceKeyFile, ServerKeyFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", name, err, st.Mode().Perm())
		}
	}
	if err := Init(dir, InitOptions{}); err == nil || !strings.Contains(err.Error(), "already initialized") {
		t.Fatalf("second init: %v", err)
	}
	// The root key can go offline: the CA runs without it.
	if err := os.Remove(filepath.Join(dir, RootKeyFile)); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k.Device.MaxPathLen != 0 || !k.Device.MaxPathLenZero || !k.Device.IsCA {
		t.Fatal("device intermediate may sign further CAs")
	}
	// A key readable by others is refused.
	if err := os.Chmod(filepath.Join(dir, DeviceKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeys(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	if _, err := LoadKeys(t.TempDir()); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("empty dir: %v", err)
	}
}

func TestLoadKeysRefusesMismatchedKey(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, d := range []string{a, b} {
		if err := Init(d, InitOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(b, DeviceKeyFile))
	os.WriteFile(filepath.Join(a, DeviceKeyFile), data, 0o600)
	if _, err := LoadKeys(a); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("foreign key accepted: %v", err)
	}
}
