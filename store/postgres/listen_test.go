package postgres

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// ListenPolicy is a component of the proxy role: a DSN that can never
// connect is an error at once (without the DSN's password in it), while
// a server that does not answer is retried until the context ends, and
// then it returns nil.
func TestListenPolicyLifecycle(t *testing.T) {
	const password = "s3cret-pw"
	tests := []struct {
		name    string
		dsn     string
		wantErr bool
	}{
		{"DSN that does not parse", "postgres://u:" + password + "@localhost:5432/db?sslmode=nonsense&connect_timeout=x", true},
		{"server not answering", "postgres://u:" + password + "@127.0.0.1:1/db?connect_timeout=1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &signalBuffer{written: make(chan struct{}, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- ListenPolicy(ctx, tc.dsn, func() {}, slog.New(slog.NewTextHandler(logs, nil))) }()
			if !tc.wantErr {
				<-logs.written // a failed connection, logged: it will retry
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ListenPolicy did not return")
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("ListenPolicy: %v, want error %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Fatalf("the error shows the DSN's password: %v", err)
			}
			if strings.Contains(logs.String(), password) {
				t.Fatalf("the log shows the DSN's password: %s", logs.String())
			}
		})
	}
}

// signalBuffer is a log that says when it was written.
type signalBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func (b *signalBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *signalBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
