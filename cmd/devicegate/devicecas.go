package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/devicegate/devicegate/ca"
	"github.com/devicegate/devicegate/proxy"
)

// deviceCAReloadEvery is how often a proxy reads its device intermediates
// again (the CA directory's, or an edge proxy's devices.pem), and a CA
// node its CA directory's: how soon after `ca intermediate new`,
// `activate` or `retire` (and, on other hosts, the copy of the files)
// every proxy trusts, and every CA node issues with, what the CA
// directory says.
var deviceCAReloadEvery = 10 * time.Second

// deviceCAsLoader reads the trusted and the retired device intermediates.
type deviceCAsLoader func() (trusted, retired []*x509.Certificate, err error)

// caDirDeviceCAs reads them from a CA directory (a proxy on the store).
func caDirDeviceCAs(dir string) deviceCAsLoader {
	return func() ([]*x509.Certificate, []*x509.Certificate, error) {
		keys, err := ca.LoadKeys(dir)
		if err != nil {
			return nil, nil, err
		}
		trusted, retired := deviceCAsOf(keys)
		return trusted, retired, nil
	}
}

func deviceCAsOf(keys *ca.Keys) (trusted, retired []*x509.Certificate) {
	for _, d := range keys.DeviceCAs {
		trusted = append(trusted, d.Cert)
	}
	for _, d := range keys.Retired {
		retired = append(retired, d.Cert)
	}
	return trusted, retired
}

// fileDeviceCAs reads an edge proxy's devices.pem: every certificate in it
// is trusted (`ca intermediate bundle` writes it).
func fileDeviceCAs(path string) deviceCAsLoader {
	return func() ([]*x509.Certificate, []*x509.Certificate, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		var trusted []*x509.Certificate
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				// A file caught half-written would silently drop the
				// intermediates after the cut: refuse it instead.
				if bytes.Contains(rest, []byte("-----BEGIN")) {
					return nil, nil, fmt.Errorf("%s: a PEM block does not decode (half-written?)", path)
				}
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			switch {
			case bytes.Equal(c.RawIssuer, c.RawSubject):
				return nil, nil, fmt.Errorf("%s: %s is a root, not a device intermediate", path, c.Subject.CommonName)
			case !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero:
				return nil, nil, fmt.Errorf("%s: %s is not a device intermediate (a CA that signs no CAs)", path, c.Subject.CommonName)
			}
			trusted = append(trusted, c)
		}
		if len(trusted) == 0 {
			return nil, nil, fmt.Errorf("%s: no PEM certificate", path)
		}
		return trusted, nil, nil
	}
}

// reloadDeviceCAs reads the device intermediates every `every` until ctx
// ends. A read that fails keeps the current set (logged): a half-copied
// file must not make the proxy refuse every device, nor trust a new set
// it could not check.
func reloadDeviceCAs(ctx context.Context, cas *proxy.DeviceCAs, load deviceCAsLoader, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		trusted, retired, err := load()
		if err == nil && len(trusted) == 0 {
			err = errors.New("no trusted device intermediate")
		}
		if err != nil {
			log.Error("device intermediates: reload failed, keeping the current ones", "err", err)
			continue
		}
		if cas.Set(trusted, retired) {
			log.Info("device intermediates reloaded", "trusted", subjects(trusted), "retired", subjects(retired))
		}
	}
}

func subjects(certs []*x509.Certificate) []string {
	out := make([]string, 0, len(certs))
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
