package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Keys is the online key material of a running CA: the root certificate
// (no key) and the two intermediates with their keys.
type Keys struct {
	Root       *x509.Certificate
	Device     *x509.Certificate
	DeviceKey  crypto.Signer
	Server     *x509.Certificate
	ServerKey  crypto.Signer
	RootPEM    []byte
	DevicePEM  []byte
	ServerPEM  []byte
	RootCRLPEM []byte // the root's CRL for the intermediates (nil: a CA made before it existed)
	rootPool   *x509.CertPool
	devicePool *x509.CertPool
}

// LoadKeys reads a CA directory written by Init. The root key is not read.
func LoadKeys(dir string) (*Keys, error) {
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotInitialized
	}
	k := &Keys{}
	var err error
	if k.Root, k.RootPEM, err = readCert(filepath.Join(dir, RootCertFile)); err != nil {
		return nil, err
	}
	if k.Device, k.DevicePEM, err = readCert(filepath.Join(dir, DeviceCertFile)); err != nil {
		return nil, err
	}
	if k.Server, k.ServerPEM, err = readCert(filepath.Join(dir, ServerCertFile)); err != nil {
		return nil, err
	}
	if k.DeviceKey, err = readKey(filepath.Join(dir, DeviceKeyFile), k.Device); err != nil {
		return nil, err
	}
	if k.ServerKey, err = readKey(filepath.Join(dir, ServerKeyFile), k.Server); err != nil {
		return nil, err
	}
	for _, c := range []*x509.Certificate{k.Device, k.Server} {
		if err := c.CheckSignatureFrom(k.Root); err != nil {
			return nil, fmt.Errorf("%s is not signed by the root: %w", c.Subject.CommonName, err)
		}
	}
	if k.RootCRLPEM, err = readRootCRL(filepath.Join(dir, RootCRLFile), k.Root); err != nil {
		return nil, err
	}
	k.rootPool = x509.NewCertPool()
	k.rootPool.AddCert(k.Root)
	k.devicePool = x509.NewCertPool()
	k.devicePool.AddCert(k.Device)
	return k, nil
}

// DevicePool holds only the device intermediate: client certificates must
// chain to it (a server certificate from the same root does not).
func (k *Keys) DevicePool() *x509.CertPool { return k.devicePool }

// RootPool holds the root, for clients verifying our TLS servers.
func (k *Keys) RootPool() *x509.CertPool { return k.rootPool }

func readCert(path string) (*x509.Certificate, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, pem.EncodeToMemory(block), nil
}

func readKey(path string, cert *x509.Certificate) (crypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by group or others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", path, cert.Subject.CommonName)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// readRootCRL reads the root's CRL if the file exists (CAs initialized
// before it was written have none); one that is not the root's is an error.
func readRootCRL(path string, root *x509.Certificate) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		return nil, fmt.Errorf("%s: no PEM CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("%s is not signed by the root: %w", path, err)
	}
	return data, nil
}
