//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sockConn is a TCP connection whose reads and writes are raw system
// calls. The socket is non-blocking, so a read or write never blocks in
// the kernel, and the scheduler's syscall entry and exit around it are
// pure cost; worse, that entry wakes the runtime's monitor thread
// whenever the process was idle a moment before (on a proxy waiting for
// its peers: every request), and the monitor then polls every 20 us for
// the next millisecond. Under peerbench that monitor was a fifth of the
// proxy's CPU (bench/README.md, "Issue 11"). Waiting, deadlines and Close
// are the netpoller's, as for any net.Conn, through syscall.RawConn.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// State of the read or write in progress, for the callbacks (made once,
	// so a call allocates nothing). Reads and writes may run at once on
	// two goroutines (net/http's background read), so each has its own.
	readFn, writeFn func(fd uintptr) bool
	rbuf, wbuf      []byte
	rn, wn          int
	rerr, werr      syscall.Errno
}

// wrapSock returns c as a sockConn when it is a TCP connection, else c.
func wrapSock(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sockConn{TCPConn: tc, rc: rc}
	s.readFn, s.writeFn = s.readOnce, s.writeAll
	return s
}

func (s *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return s.TCPConn.Read(p)
	}
	s.rbuf, s.rn, s.rerr = p, 0, 0
	err := s.rc.Read(s.readFn)
	n, errno := s.rn, s.rerr
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err // closed, or the deadline passed
	case errno != 0:
		return 0, s.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is the RawConn callback of Read: false means "wait until the
// socket is readable, then call again".
func (s *sockConn) readOnce(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rbuf[0])), uintptr(len(s.rbuf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.rn = int(n)
		default:
			s.rerr = errno
		}
		return true
	}
}

func (s *sockConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return s.TCPConn.Write(p)
	}
	s.wbuf, s.wn, s.werr = p, 0, 0
	err := s.rc.Write(s.writeFn)
	n, errno := s.wn, s.werr
	s.wbuf = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, s.opError("write", errno)
	}
	return n, nil
}

// writeAll is the RawConn callback of Write: it writes until all of wbuf
// is out, or the socket's buffer is full (false: wait, then call again).
func (s *sockConn) writeAll(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		rest := s.wbuf[s.wn:]
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			s.wn += int(n)
		default:
			s.werr = errno
			return true
		}
	}
	return true
}

// opError reports a failed system call as net.TCPConn would.
func (s *sockConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
