package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestVerifyTestClockNotInProductionBinary: the fake clock of the browser
// tests (DEVICEGATE_TESTCLOCK_FILE) is compiled only with the
// devicegate_testclock tag: the production binary does not contain its
// name, the test build does (so this check can see it when it is there).
func TestVerifyTestClockNotInProductionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	dir := t.TempDir()
	build := func(name string, args ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build", "-o", out}, args...), ".")...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	marker := []byte("DEVICEGATE_TESTCLOCK_FILE")
	if bytes.Contains(build("production"), marker) {
		t.Fatal("the production binary contains the test clock")
	}
	if !bytes.Contains(build("testclock", "-tags", "devicegate_testclock"), marker) {
		t.Fatal("the test build lacks the test clock: this check cannot see it")
	}
}
