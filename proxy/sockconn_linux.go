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
	readFn, writeFn, exchangeFn func(fd uintptr) bool
	rbuf, wbuf                  []byte
	rn, wn                      int
	rerr, werr                  syscall.Errno

	exchange bool // the next Write is a request: see awaitAnswer
	sent     bool // exchangeFn's state: the request is out
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
	s.readFn, s.writeFn, s.exchangeFn = s.readOnce, s.writeAll, s.sendThenWait
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
	if s.exchange {
		s.exchange = false
		return s.writeExchange(p)
	}
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

// awaitAnswer makes the next Write a request: it returns once the
// socket is readable, so the Read of the answer that follows does not
// first find the socket empty (a system call, several microseconds on a
// virtual machine). Only for a connection whose peer sends nothing
// unasked and that one goroutine uses (the gateway's upstream
// connections): the wait is set up before the request goes out, so an
// answer that comes at once is not missed.
func (s *sockConn) awaitAnswer() { s.exchange = true }

// writeExchange writes p and waits for the answer within one RawConn.Read:
// its readiness state is reset before the write, not after it.
func (s *sockConn) writeExchange(p []byte) (int, error) {
	s.sent = false
	err := s.rc.Read(s.exchangeFn)
	n, errno := s.wn, s.werr
	s.wbuf = nil
	switch {
	case errno != 0:
		return n, s.opError("write", errno)
	case !s.sent && err == nil:
		// The socket buffer is full (or a signal came): write the rest as
		// an ordinary write, with its deadline.
		m, err := s.Write(p[n:])
		return n + m, err
	case !s.sent:
		return n, err // closed, or past the deadline, before it was all out
	}
	// The request is out. A wait that ended without an answer (deadline,
	// Close) is the next Read's to report, as for any connection.
	return n, nil
}

// sendThenWait is the RawConn callback of writeExchange: it writes the
// request, then asks to be called again once the socket is readable.
func (s *sockConn) sendThenWait(fd uintptr) bool {
	if s.sent {
		return true // readable: the answer is there
	}
	if !s.writeAll(fd) || s.werr != 0 {
		return true
	}
	s.sent = true
	return false
}

// opError reports a failed system call as net.TCPConn would.
func (s *sockConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
