package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/devicegate/devicegate/internal/atomicfile"
)

// File names inside the CA directory. The root key is only needed by
// `devicegate ca init`; afterwards it can be moved offline.
const (
	RootCertFile    = "root.crt"
	RootKeyFile     = "root.key"
	DeviceCertFile  = "devices.crt" // intermediate that signs device and proxy client certs
	DeviceKeyFile   = "devices.key"
	ServerCertFile  = "servers.crt" // intermediate that signs TLS server certs
	ServerKeyFile   = "servers.key"
	RootCRLFile     = "root.crl" // the root's (empty) CRL for the intermediates, PEM
	rootValidity    = 20 * 365 * 24 * time.Hour
	interValidity   = 10 * 365 * 24 * time.Hour
	interBackdating = time.Minute
)

// ErrNotInitialized means the CA directory holds no CA yet.
var ErrNotInitialized = errors.New("CA is not initialized (run `devicegate ca init`)")

// InitOptions name the new CA.
type InitOptions struct {
	Name string // e.g. "devicegate demo-store"
	Now  time.Time
}

// Init creates a root and two intermediates (devices, servers) in dir.
// It refuses to overwrite an existing CA. Keys are written 0600.
func Init(dir string, o InitOptions) error {
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); err == nil {
		return fmt.Errorf("CA already initialized in %s", dir)
	}
	if o.Name == "" {
		o.Name = "devicegate"
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create CA dir: %w", err)
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	root, err := createCA(o.Name+" Root CA", o.Now, rootValidity, 1, nil, nil, rootKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		RootCertFile: pemCert(root),
	}
	if files[RootKeyFile], err = pemKey(rootKey); err != nil {
		return err
	}
	for _, in := range []struct{ name, cert, key string }{
		{o.Name + " Device CA", DeviceCertFile, DeviceKeyFile},
		{o.Name + " Server CA", ServerCertFile, ServerKeyFile},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		cert, err := createCA(in.name, o.Now, interValidity, 0, root, rootKey, key)
		if err != nil {
			return err
		}
		files[in.cert] = pemCert(cert)
		if files[in.key], err = pemKey(key); err != nil {
			return err
		}
	}
	// nginx and HAProxy check a CRL for every CA of a client's chain, so
	// the root signs one for its intermediates now, while its key is here:
	// empty, valid as long as they are.
	rootCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: o.Now, NextUpdate: o.Now.Add(interValidity),
	}, root, rootKey)
	if err != nil {
		return err
	}
	files[RootCRLFile] = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: rootCRL})
	// Keys first, then certificates, root.crt last: its presence marks a
	// complete CA, so a crash half-way leaves a directory Init can redo.
	order := []string{RootKeyFile, DeviceKeyFile, ServerKeyFile, DeviceCertFile, ServerCertFile, RootCRLFile, RootCertFile}
	for _, name := range order {
		mode := os.FileMode(0o644)
		if filepath.Ext(name) == ".key" {
			mode = 0o600
		}
		if err := atomicfile.Write(filepath.Join(dir, name), files[name], mode); err != nil {
			return err
		}
	}
	return nil
}

func createCA(cn string, now time.Time, validity time.Duration, maxPath int, parent *x509.Certificate, parentKey crypto.Signer, key *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"devicegate"}},
		NotBefore:             now.Add(-interBackdating),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPath,
		MaxPathLenZero:        maxPath == 0,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

// randomSerial returns a positive random 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(k crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
