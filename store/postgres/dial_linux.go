package postgres

import (
	"errors"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setDeadPeerTimeout sets TCP_USER_TIMEOUT on TCP sockets (not on the
// Unix socket of a local server).
func setDeadPeerTimeout(network, _ string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(deadPeerAfter.Milliseconds()))
	})
	return errors.Join(err, serr)
}
