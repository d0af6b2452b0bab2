//go:build !linux

package postgres

import "syscall"

// setDeadPeerTimeout: only Linux has TCP_USER_TIMEOUT; elsewhere the
// keepalive probes alone find a dead connection.
func setDeadPeerTimeout(string, string, syscall.RawConn) error { return nil }
