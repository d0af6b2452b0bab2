package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
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
