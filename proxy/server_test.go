package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A Shutdown that runs before Serve has taken its listener (a test or a
// process stopping at once) still ends Serve: it used to wait in Accept
// forever, and a test's cleanup with it (seen as a 10-minute hang in CI).
func TestShutdownBeforeServe(t *testing.T) {
	e := newEnv(t, time.Minute)
	srv := NewServer(e.gw, &http.Server{})
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		t.Fatal("Serve after Shutdown kept accepting")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("the listener is still open")
	}
}

// A client that sends its next request the moment an answer arrives keeps
// a fast-path connection busy, rarely idle: at shutdown its next answer
// says "Connection: close" and the connection ends, instead of serving on
// until a poll happens to find it idle (683 answers after SIGTERM, seen).
func TestShutdownEndsBusyKeepAlive(t *testing.T) {
	e := newEnv(t, time.Minute)
	c := e.dialRaw(t, nil)
	var shuttingDown atomic.Bool
	busy := make(chan struct{}, 1)
	after := make(chan http.Header, 10000) // answers sent after Shutdown began
	go func() {
		defer close(after)
		for {
			c.send("GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
			_ = c.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				return
			}
			resp.Body.Close()
			select {
			case busy <- struct{}{}:
			default:
			}
			if shuttingDown.Load() {
				after <- resp.Header
			}
			if resp.Close {
				return
			}
		}
	}()
	<-busy
	<-busy
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	shuttingDown.Store(true)
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	n := 0
	var last http.Header
	for h := range after {
		n, last = n+1, h
	}
	// At most the answer in flight when Shutdown began, and the one that
	// says it is the last.
	if n > 2 {
		t.Fatalf("%d answers on the busy connection after Shutdown began", n)
	}
	if n == 2 && last.Get("Connection") != "close" {
		t.Fatalf("the last answer did not say Connection: close: %v", last)
	}
}
