package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
)

// plainServer is a plain-HTTP listener on loopback: the demo back-office
// app (the proxy's upstream) and the admin (metrics) listener.
type plainServer struct {
	name string
	url  string
	ln   net.Listener
	srv  *http.Server
}

type (
	backofficeServer = plainServer
	adminServer      = plainServer
)

func listenPlain(name, addr string, h http.Handler, log *slog.Logger) (*plainServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return &plainServer{name: name, url: "http://" + ln.Addr().String(), ln: ln, srv: srv}, nil
}

// listenAdmin serves metrics at /metrics and, when asked, the Go profiler.
func listenAdmin(addr string, metrics http.Handler, withPprof bool, log *slog.Logger) (*adminServer, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return listenPlain("admin", addr, mux, log)
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
	return listenPlain("back-office app", addr, backoffice.New(boUsers), log)
}

func (b *plainServer) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- b.srv.Serve(b.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", b.name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
