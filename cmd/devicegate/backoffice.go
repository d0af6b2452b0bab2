package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
)

// backofficeServer is the demo back-office app on loopback (plain HTTP: it
// is the upstream the proxy will front).
type backofficeServer struct {
	url string
	ln  net.Listener
	srv *http.Server
}

func startBackoffice(addr string, users []demoUser, log *slog.Logger) (*backofficeServer, error) {
	var boUsers []backoffice.User
	for _, u := range users {
		h, err := secrets.HashPassword(u.Password)
		if err != nil {
			return nil, err
		}
		boUsers = append(boUsers, backoffice.User{Name: u.Name, PasswordHash: h})
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("back-office app: listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           backoffice.New(boUsers),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return &backofficeServer{url: "http://" + ln.Addr().String(), ln: ln, srv: srv}, nil
}

func (b *backofficeServer) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- b.srv.Serve(b.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("back-office app: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
