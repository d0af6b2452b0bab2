package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's times.
const clockTick = 10 * time.Millisecond

// CPUTime is the CPU time (user + system) the server's processes have used
// so far: the postmaster, its live children (backends, WAL writer, ...)
// and the children that have exited. Benchmarks add it to their own
// process's time, so a ratio of CPU per operation counts the database's
// share too. Linux only (reads /proc).
func (s *Server) CPUTime() (time.Duration, error) {
	pidFile, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	postmaster := strings.SplitN(string(pidFile), "\n", 2)[0]
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		f, ok := statFields(p)
		if !ok {
			continue // gone meanwhile
		}
		pid, ppid := filepath.Base(filepath.Dir(p)), f[1]
		switch {
		case pid == postmaster:
			ticks += sumFields(f, 11, 12, 13, 14) // its own and its reaped children's
		case ppid == postmaster:
			ticks += sumFields(f, 11, 12)
		}
	}
	if ticks == 0 {
		return 0, fmt.Errorf("postmaster %s not found in /proc", postmaster)
	}
	return time.Duration(ticks) * clockTick, nil
}

// statFields returns the fields of /proc/PID/stat after the command name
// (state is [0], ppid [1], utime [11], stime [12], cutime [13], cstime [14]).
func statFields(path string) ([]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the name may hold spaces and ')'
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(s[i+1:])
	return f, len(f) > 14
}

func sumFields(f []string, idx ...int) int64 {
	var n int64
	for _, i := range idx {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return n
}
