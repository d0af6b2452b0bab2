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

func TestWrapSockLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if wrapSock(a) != a {
		t.Fatal("a non-TCP connection was wrapped")
	}
}
