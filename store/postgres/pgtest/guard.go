package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// A test process that dies without running its Cleanups (a test timeout
// panics past them; a kill runs none) would leave its PostgreSQL servers
// running and their directories behind. So the first server a process
// starts also starts a guard: a shell in its own process group that reads
// "stop DATA" and "rm DIR" lines from a pipe whose write end only this
// process holds. The kernel closes that end however the process ends; at
// end of file the guard stops every listed cluster (immediate) and removes
// every listed directory. After a normal end the Cleanups have done both
// already and the guard finds nothing to do.
const guardScript = `stops=""; rms=""
while IFS= read -r l; do
	case "$l" in
	"stop "*) stops="$stops${l#stop }
";;
	"rm "*) rms="$rms${l#rm }
";;
	esac
done
printf %s "$stops" | while IFS= read -r d; do "$@" -D "$d" -m immediate -w stop >/dev/null 2>&1 </dev/null; done
printf %s "$rms" | while IFS= read -r d; do rm -rf "$d"; done`

var guard struct {
	once sync.Once
	mu   sync.Mutex
	w    *os.File // kept for the life of the process: closing it fires the guard
	err  error
}

// guardAdd tells the guard to stop the cluster in data (verb "stop") or
// remove dir (verb "rm") if this process dies first; pgctl is how pg_ctl
// runs here (through runuser as root).
func guardAdd(pgctl []string, verb, path string) error {
	guard.once.Do(func() { guard.w, guard.err = startGuard(pgctl) })
	if guard.err != nil {
		return fmt.Errorf("pgtest guard: %w", guard.err)
	}
	guard.mu.Lock()
	defer guard.mu.Unlock()
	_, err := fmt.Fprintf(guard.w, "%s %s\n", verb, path)
	return err
}

func startGuard(pgctl []string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command("sh", append([]string{"-c", guardScript, "pgtest-guard"}, pgctl...)...)
	cmd.Stdin = r // stdout and stderr: /dev/null, so that go test does not wait for the guard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	// Released, not waited for: it ends only after this process has.
	_ = cmd.Process.Release()
	return w, nil
}
