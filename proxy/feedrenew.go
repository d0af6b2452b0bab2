package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/internal/atomicfile"
)

// A feed proxy renews its own certificate (7 days) over mTLS with the
// current one, at two thirds of its life, and writes the new key and
// certificate to its credentials directory so a restart keeps them.
// The files are replaced in an order a crash cannot break:
// key.pem.next, then cert.pem, then key.pem.next renamed to key.pem;
// LoadFeedCertificate finishes an interrupted renewal.
const (
	feedCertFile = "cert.pem"
	feedKeyFile  = "key.pem"
	feedNextKey  = "key.pem.next"
)

// feedRenewRetry bounds the wait after a failed renewal: the certificate
// keeps working meanwhile, a third of its life is left.
const (
	feedRenewRetryMin = time.Minute
	feedRenewRetryMax = time.Hour
)

// LoadFeedCertificate reads cert.pem and key.pem from dir. When they do
// not match and key.pem.next does (a renewal interrupted between its
// writes), it completes the renewal and uses the new pair.
func LoadFeedCertificate(dir string) (tls.Certificate, error) {
	certFile, keyFile, nextKey := filepath.Join(dir, feedCertFile), filepath.Join(dir, feedKeyFile), filepath.Join(dir, feedNextKey)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil {
		return cert, nil
	}
	next, nextErr := tls.LoadX509KeyPair(certFile, nextKey)
	if nextErr != nil {
		return tls.Certificate{}, err
	}
	if err := os.Rename(nextKey, keyFile); err != nil {
		return tls.Certificate{}, fmt.Errorf("finish an interrupted certificate renewal: %w", err)
	}
	return next, nil
}

var errNoFeedCertificate = errors.New("feed client has no certificate to renew")

// Certificate is the proxy certificate the feed client presents now (it
// changes when KeepRenewed renews it); nil before one is loaded.
func (f *FeedClient) Certificate() *x509.Certificate { return f.leaf.Load() }

// renewDue is when a certificate should be renewed: at 2/3 of its life.
func renewDue(leaf *x509.Certificate) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// RenewIfDue renews the certificate when now is past 2/3 of its life,
// writes key and chain to dir and uses them for new connections. It
// returns when the (possibly new) certificate is due next.
func (f *FeedClient) RenewIfDue(ctx context.Context, dir string, now time.Time) (time.Time, error) {
	leaf := f.leaf.Load()
	if leaf == nil {
		return time.Time{}, errNoFeedCertificate
	}
	if due := renewDue(leaf); now.Before(due) {
		return due, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return time.Time{}, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return time.Time{}, err
	}
	var out api.ProxyCertificate
	csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err := f.post(ctx, api.ProxyRenewPath, api.ProxyRenewRequest{CSR: csrPEM}, http.StatusCreated, &out); err != nil {
		return time.Time{}, fmt.Errorf("renew proxy certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return time.Time{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair([]byte(out.Chain), keyPEM)
	if err != nil {
		return time.Time{}, fmt.Errorf("renewed proxy certificate: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return time.Time{}, err
		}
	}
	if len(cert.Leaf.URIs) != 1 || len(leaf.URIs) != 1 || cert.Leaf.URIs[0].String() != leaf.URIs[0].String() {
		return time.Time{}, errors.New("renewed proxy certificate names another proxy")
	}
	if err := atomicfile.Write(filepath.Join(dir, feedNextKey), keyPEM, 0o600); err != nil {
		return time.Time{}, err
	}
	if err := atomicfile.Write(filepath.Join(dir, feedCertFile), []byte(out.Chain), 0o644); err != nil {
		return time.Time{}, err
	}
	if err := os.Rename(filepath.Join(dir, feedNextKey), filepath.Join(dir, feedKeyFile)); err != nil {
		return time.Time{}, err
	}
	f.useCertificate(cert)
	f.log.Info("proxy certificate renewed", "serial", out.Serial, "not_after", out.NotAfter)
	return renewDue(cert.Leaf), nil
}

// KeepRenewed renews the certificate whenever it is due until ctx ends
// (then it returns nil); a failure is logged and retried (1 min, doubling
// up to 1 h). Without a certificate there is nothing it could ever renew:
// that is its one error.
func (f *FeedClient) KeepRenewed(ctx context.Context, dir string, now func() time.Time) error {
	if f.leaf.Load() == nil {
		return errNoFeedCertificate
	}
	retry := feedRenewRetryMin
	for {
		next, err := f.RenewIfDue(ctx, dir, now())
		wait := next.Sub(now())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			f.log.Error("proxy certificate renewal failed; retrying", "retry_in", retry, "err", err)
			wait, retry = retry, min(2*retry, feedRenewRetryMax)
		} else {
			retry = feedRenewRetryMin
		}
		t := time.NewTimer(max(wait, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
