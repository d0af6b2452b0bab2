//go:build !devicegate_testclock

package main

import "time"

// clock is the time the portal and the deadline job read, and how often
// the job looks. Production builds have only the real clock; the fake one
// of the browser tests exists only with the devicegate_testclock build tag
// (clock_testclock.go), and TestProductionBinaryHasNoTestClock checks it.
func clock() (now func() time.Time, jobEvery time.Duration) { return time.Now, time.Minute }
