package pgtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const guardChildEnv = "PGTEST_GUARD_CHILD"

// A test process that dies without its Cleanups (here os.Exit, as a test
// timeout or a kill would) leaves no PostgreSQL behind: the guard stops
// the primary and its standby and removes their directory. The child is
// this test binary run again; it prints what it started, then exits.
func TestGuardStopsServersOfDeadProcess(t *testing.T) {
	if os.Getenv(guardChildEnv) == "1" {
		r := StartReplicated(t)
		fmt.Printf("started %d %d %s\n", r.Primary.port, r.Standby.port, r.Primary.dir)
		os.Exit(3) // no Cleanup runs
	}
	if _, err := binDir(); err != nil && os.Getenv(RequireEnv) != "1" {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuardStopsServersOfDeadProcess$", "-test.v")
	cmd.Env = append(os.Environ(), guardChildEnv+"=1")
	out, _ := cmd.CombinedOutput() // exit status 3 on purpose
	var primary, standby int
	var dir string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "started %d %d %s", &primary, &standby, &dir); err == nil {
			break
		}
	}
	if dir == "" {
		t.Fatalf("the child started no servers:\n%s", out)
	}
	// Should the guard fail, this process's own guard still stops them
	// when it ends.
	bin, _ := binDir()
	pgctl := []string{filepath.Join(bin, "pg_ctl")}
	if os.Geteuid() == 0 {
		pgctl = append([]string{"runuser", "-u", "postgres", "--"}, pgctl...)
	}
	for _, l := range [][2]string{{"stop", filepath.Join(dir, "data")}, {"stop", filepath.Join(dir, "standby")}, {"rm", dir}} {
		if err := guardAdd(pgctl, l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		up := listening(primary) || listening(standby)
		_, statErr := os.Stat(dir)
		if !up && os.IsNotExist(statErr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("60 s after the child died: servers listening %v, directory %s still there: %v", up, dir, statErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}
