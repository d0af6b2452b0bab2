package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// loopbackPair is a wrapped TCP connection and its plain peer.
func loopbackPair(t *testing.T) (wrapped net.Conn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return wrapSock(c), peer
}

// The raw socket I/O must behave as net.TCPConn does: the same bytes,
// EOF, deadlines as timeouts, Close ending a blocked read.
func TestSockConnBehavesAsTCPConn(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c, peer net.Conn)
	}{
		{"bytes both ways, larger than the socket buffers", func(t *testing.T, c, peer net.Conn) {
			out := make([]byte, 4<<20)
			rand.Read(out)
			echoed := make(chan []byte, 1)
			go func() { // the peer echoes everything back
				b, _ := io.ReadAll(io.TeeReader(peer, peer))
				echoed <- b
			}()
			back := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(out))
				_, err := io.ReadFull(c, b)
				if err != nil {
					t.Error(err)
				}
				back <- b
			}()
			if n, err := c.Write(out); err != nil || n != len(out) {
				t.Fatalf("write: %d, %v", n, err)
			}
			if !bytes.Equal(<-back, out) {
				t.Fatal("read back other bytes than written")
			}
			c.(interface{ CloseWrite() error }).CloseWrite()
			if !bytes.Equal(<-echoed, out) {
				t.Fatal("peer read other bytes than written")
			}
		}},
		{"EOF when the peer closes", func(t *testing.T, c, peer net.Conn) {
			peer.Write([]byte("last"))
			peer.Close()
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "last" {
				t.Fatalf("got %q, %v; want \"last\" and EOF", b, err)
			}
		}},
		{"read deadline is a timeout", func(t *testing.T, c, peer net.Conn) {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := c.Read(make([]byte, 10))
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got %v, want a timeout", err)
			}
		}},
		{"write deadline is a timeout when the peer reads nothing", func(t *testing.T, c, peer net.Conn) {
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := c.Write(make([]byte, 16<<20))
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got %v, want a timeout", err)
			}
		}},
		{"Close ends a blocked read", func(t *testing.T, c, peer net.Conn) {
			done := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 10))
				done <- err
			}()
			time.AfterFunc(20*time.Millisecond, func() { c.Close() })
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("got %v, want net.ErrClosed", err)
			}
		}},
		{"a reset connection is an error, not EOF", func(t *testing.T, c, peer net.Conn) {
			peer.(*net.TCPConn).SetLinger(0)
			peer.Close()
			_, err := c.Read(make([]byte, 10))
			if err == nil || err == io.EOF {
				t.Fatalf("got %v, want a connection reset", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := loopbackPair(t)
			tt.run(t, c, peer)
		})
	}
}

// A request written with awaitAnswer returns once the answer is there,
// however soon it comes, and the answer is read as usual; a request that
// gets no answer leaves the deadline or the close to the next Read.
func TestSockConnAwaitAnswer(t *testing.T) {
	tests := []struct {
		name    string
		request int                 // bytes
		peer    func(peer net.Conn) // what the other side does once it has the request
		setup   func(c net.Conn)    // before the request
		check   func(t *testing.T, c net.Conn, n int, err error)
	}{
		{"answer at once", 100, func(peer net.Conn) { peer.Write([]byte("answer")) }, nil,
			func(t *testing.T, c net.Conn, n int, err error) { readAnswer(t, c, "answer") }},
		{"request larger than the socket buffer", 16 << 20, func(peer net.Conn) { peer.Write([]byte("big")) }, nil,
			func(t *testing.T, c net.Conn, n int, err error) { readAnswer(t, c, "big") }},
		{"no answer: the Read times out", 100, func(peer net.Conn) {},
			func(c net.Conn) { c.SetDeadline(time.Now().Add(30 * time.Millisecond)) },
			func(t *testing.T, c net.Conn, n int, err error) {
				if err != nil || n != 100 {
					t.Fatalf("write: %d, %v; want all written", n, err)
				}
				_, err = c.Read(make([]byte, 10))
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("read: %v, want a timeout", err)
				}
			}},
		{"the peer closes: EOF", 100, func(peer net.Conn) { peer.Close() }, nil,
			func(t *testing.T, c net.Conn, n int, err error) {
				if _, err := c.Read(make([]byte, 10)); err != io.EOF {
					t.Fatalf("read: %v, want EOF", err)
				}
			}},
		{"a closed connection is an error", 100, func(peer net.Conn) {}, func(c net.Conn) { c.Close() },
			func(t *testing.T, c net.Conn, n int, err error) {
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("write: %v, want net.ErrClosed", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := loopbackPair(t)
			s, ok := c.(*sockConn)
			if !ok {
				t.Skip("no raw socket I/O on this platform")
			}
			go func() {
				if _, err := io.ReadFull(peer, make([]byte, tt.request)); err == nil {
					tt.peer(peer)
				}
			}()
			if tt.setup != nil {
				tt.setup(c)
			}
			s.awaitAnswer()
			n, err := c.Write(make([]byte, tt.request))
			if s.exchange {
				t.Fatal("awaitAnswer applies to more than the next write")
			}
			tt.check(t, c, n, err)
		})
	}
}

func readAnswer(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, len(want))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != want {
		t.Fatalf("read %q, %v; want %q", b, err, want)
	}
}

func TestWrapSockLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if wrapSock(a) != a {
		t.Fatal("a non-TCP connection was wrapped")
	}
}
