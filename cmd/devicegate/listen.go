package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/proxy"
)

// localHosts are the names our internal server CA certifies for loopback use.
var localHosts = []string{"localhost", "127.0.0.1"}

// serverTLS returns the HTTPS listeners' TLS: the configured certificate
// files or ACME CA (one certificate cache per process, each listener its
// own copy of the config), or else certmagic-managed certificates for
// tls.hosts from the internal server CA, stored under the data directory.
func (a *app) serverTLS(ctx context.Context) (*tls.Config, error) {
	if a.externalTLS == nil {
		tc, start, err := externalServerTLS(ctx, a.cfg)
		if err != nil {
			return nil, err
		}
		a.externalTLS, a.startCerts = tc, start
	}
	if a.externalTLS != nil {
		return a.externalTLS.Clone(), nil
	}
	return ca.ServerTLS(ctx, a.ca.Keys(), filepath.Join(a.cfg.DataDir, "tls"), a.cfg.TLS.Hosts)
}

// startCertificates begins ACME once the listeners are bound (a no-op for
// the other certificate sources).
func (a *app) startCertificates(ctx context.Context) error {
	if a.startCerts == nil {
		return nil
	}
	return a.startCerts(ctx)
}

// externalServerTLS is the server certificate that does not come from our
// own CA: the operator's files (tls.cert_file) or an ACME CA (tls.acme),
// with the function that starts ACME. Both nil when neither is configured.
func externalServerTLS(ctx context.Context, cfg *config.Config) (*tls.Config, func(context.Context) error, error) {
	storage := filepath.Join(cfg.DataDir, "tls")
	switch {
	case cfg.TLS.CertFile != "":
		tc, err := ca.ServerTLSFromFiles(ctx, cfg.TLS.CertFile, cfg.TLS.KeyFile, storage)
		return tc, nil, err
	case cfg.TLS.ACME.DirectoryURL != "":
		var roots *x509.CertPool // nil: the system's
		if f := cfg.TLS.ACME.CARootFile; f != "" {
			var err error
			if roots, err = poolFromFile(f); err != nil {
				return nil, nil, fmt.Errorf("tls.acme.ca_root_file: %w", err)
			}
		}
		return ca.ServerTLSFromACME(ctx, ca.ACMEOptions{DirectoryURL: cfg.TLS.ACME.DirectoryURL, Email: cfg.TLS.ACME.Email,
			Hosts: cfg.TLS.Hosts, Roots: roots, TLSALPNPort: cfg.TLS.ACME.TLSALPNPort}, storage)
	}
	return nil, nil, nil
}

// server is one listener with its http.Server: TLS (CA, proxy) or, with
// a nil TLS config, plain HTTP on loopback (the demo app, the admin port).
type server struct {
	name string
	ln   net.Listener
	srv  *http.Server
	fast *proxy.Server // the gateway's listener: fast path first, then srv
}

// listen binds addr (so ":0" picks a port) and prepares a server.
func listen(name, addr string, h http.Handler, tc *tls.Config, log *slog.Logger) (*server, error) {
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
	return &server{name: name, ln: ln, srv: srv}, nil
}

// URL is the server's URL; for TLS it names "localhost", which the server
// certificate covers.
func (s *server) URL() string {
	if s.srv.TLSConfig == nil {
		return "http://" + s.ln.Addr().String()
	}
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "https://localhost:" + port
}

// serve runs until ctx ends, then drains connections for up to 10 s and
// returns once its Serve goroutine has.
func (s *server) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	switch {
	case s.fast != nil:
		go func() { errc <- s.fast.Serve(s.ln) }()
	case s.srv.TLSConfig != nil:
		go func() { errc <- s.srv.Serve(tls.NewListener(s.ln, s.srv.TLSConfig)) }()
	default:
		go func() { errc <- s.srv.Serve(s.ln) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", s.name, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutdown := s.srv.Shutdown
	if s.fast != nil {
		shutdown = s.fast.Shutdown
	}
	err := shutdown(shutdownCtx)
	<-errc // Serve returned when shutdown closed the listener: nothing left running
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
