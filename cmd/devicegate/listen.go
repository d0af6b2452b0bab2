package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/devicegate/devicegate/ca"
)

// localHosts are the names our internal server CA certifies for loopback use.
var localHosts = []string{"localhost", "127.0.0.1"}

// serverTLS returns certmagic-managed TLS for the local host names, issued
// by the internal server CA and stored under the data directory.
func (a *app) serverTLS(ctx context.Context) (*tls.Config, error) {
	return ca.ServerTLS(ctx, a.ca.Keys(), filepath.Join(a.cfg.DataDir, "tls"), localHosts)
}

// httpsServer is one TLS listener with its http.Server.
type httpsServer struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// listenTLS binds addr (so ":0" picks a port) and prepares a server.
func listenTLS(name, addr string, h http.Handler, tc *tls.Config, log *slog.Logger) (*httpsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return &httpsServer{name: name, ln: ln, srv: srv}, nil
}

// URL is the https URL of the bound address, using "localhost" for loopback
// so it matches the server certificate.
func (s *httpsServer) URL() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "https://localhost:" + port
}

// serve runs until ctx ends, then drains connections for up to 10 s.
func (s *httpsServer) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(tls.NewListener(s.ln, s.srv.TLSConfig)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", s.name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
