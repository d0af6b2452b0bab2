//go:build devicegate_testclock

package main

import (
	"os"
	"strings"
	"time"
)

// testClockEnv names a file holding a duration (e.g. "169h") that the
// clock adds to the real time: the browser end-to-end tests move the
// portal and the deadline job days ahead with it. Test builds only.
const testClockEnv = "DEVICEGATE_TESTCLOCK_FILE"

func clock() (now func() time.Time, jobEvery time.Duration) {
	path := os.Getenv(testClockEnv)
	if path == "" {
		return time.Now, time.Minute
	}
	return func() time.Time {
		b, err := os.ReadFile(path)
		if err != nil {
			return time.Now()
		}
		d, err := time.ParseDuration(strings.TrimSpace(string(b)))
		if err != nil {
			return time.Now()
		}
		return time.Now().Add(d)
	}, time.Second
}
