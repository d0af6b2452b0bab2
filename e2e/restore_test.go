package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// writeRestored writes data to path, a file outside the test's own
// directories (a browser policy under /etc), and puts the machine back as
// it was when the test ends, also after a failure: a file that existed
// gets its old content and mode back, a new one is removed, and so are the
// directories made for it (only while empty).
func writeRestored(t *testing.T, path string, data []byte) {
	t.Helper()
	var made []string // innermost first
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		_, err := os.Lstat(dir)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		made = append(made, dir)
	}
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var mode fs.FileMode = 0o644
	if existed {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		mode = st.Mode().Perm()
	}
	// Registered before anything is written, so a half-done write is
	// undone too.
	t.Cleanup(func() {
		if existed {
			if err := os.WriteFile(path, old, mode); err != nil {
				t.Errorf("restore %s: %v", path, err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Errorf("restore %s: %v", path, err)
			}
		} else if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("remove %s: %v", path, err)
		}
		for _, dir := range made {
			if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("remove %s (made by the test): %v", dir, err)
			}
		}
	})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// The machine is as before after a test that wrote there: a file that was
// there keeps its content and mode, a new file and the directories made
// for it are gone, and a directory that was there stays; also when the
// test leaves early (SkipNow ends it the way t.Fatal does, through
// runtime.Goexit, without failing this test).
func TestWriteRestoredPutsTheMachineBack(t *testing.T) {
	cases := []struct {
		name     string
		existing string // content of a file already there ("" for none)
		nested   bool   // the file's directories do not exist yet
		early    bool   // the test using writeRestored stops half-way
	}{
		{name: "new file, new directories", nested: true},
		{name: "new file in an existing directory"},
		{name: "existing file", existing: `{"SomePolicy": true}`},
		{name: "existing file, the test stops early", existing: `{"SomePolicy": true}`, early: true},
		{name: "new directories, the test stops early", nested: true, early: true},
	}
	const policy = `{"AutoSelectCertificateForUrls": []}`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, "policy.json")
			if c.nested {
				path = filepath.Join(root, "chromium", "policies", "managed", "policy.json")
			}
			if c.existing != "" {
				if err := os.WriteFile(path, []byte(c.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Run("writer", func(w *testing.T) {
				writeRestored(w, path, []byte(policy))
				if got, err := os.ReadFile(path); err != nil || string(got) != policy {
					t.Errorf("while the test runs the file holds %q, %v", got, err)
				}
				if c.early {
					w.SkipNow()
				}
			})
			got, err := os.ReadFile(path)
			if c.existing != "" {
				if err != nil || string(got) != c.existing {
					t.Fatalf("after the test the file holds %q, %v; want the old content", got, err)
				}
				if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("after the test: %v, %v; want the old mode 0600", st, err)
				}
				return
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the file is still there (%v)", err)
			}
			if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
				t.Fatalf("left behind: %v, %v", entries, err)
			}
		})
	}
}
