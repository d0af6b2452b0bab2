package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/atomicfile"
)

// The device intermediate's life: NewIntermediate (or ImportIntermediate)
// adds one as trusted, so proxies learn it before any device holds a
// certificate of it; ActivateIntermediate makes it sign new certificates
// while the previous one stays trusted (the overlap); RetireIntermediate
// ends the overlap, and certificates of the retired one are refused. Each
// step writes the state file last, in one rename, after checking that the
// directory loads with it: a step that fails leaves the CA as it was.

// maxIntermediatePEM bounds an imported certificate or key file.
const maxIntermediatePEM = 64 << 10

// NewIntermediate creates a device intermediate signed by the root and
// adds it as trusted (not yet issuing). rootKeyFile is where the root key
// is (the offline copy); "" means the CA directory's own root.key. The
// root's CRL is signed again to cover the new intermediate's lifetime.
func NewIntermediate(dir, rootKeyFile string, now time.Time) (string, error) {
	keys, st, err := loadWithState(dir)
	if err != nil {
		return "", err
	}
	rootKey, err := readRootKey(dir, rootKeyFile, keys)
	if err != nil {
		return "", err
	}
	name, err := nextIntermediateName(dir, st)
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	validity := min(interValidity, keys.Root.NotAfter.Sub(now))
	if validity < 24*time.Hour {
		return "", errors.New("the root expires within a day: make a new CA")
	}
	cn := strings.TrimSuffix(keys.Root.Subject.CommonName, " Root CA") + " Device CA " + strings.TrimPrefix(name, originalDeviceName+"-")
	cert, err := createCA(cn, now, validity, 0, keys.Root, rootKey, key)
	if err != nil {
		return "", err
	}
	keyPEM, err := pemKey(key)
	if err != nil {
		return "", err
	}
	rootCRL, err := resignRootCRL(keys, rootKey, now, cert.NotAfter)
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(filepath.Join(dir, RootCRLFile), rootCRL, 0o644); err != nil {
		return "", err
	}
	return name, addIntermediate(dir, st, name, pemCert(cert), keyPEM)
}

// ImportIntermediate adds a device intermediate made elsewhere (by the
// offline root on another machine) as trusted. It must be a CA signed by
// this CA's root, valid now, unable to sign further CAs, with its key; an
// intermediate of another root is refused and nothing is written.
func ImportIntermediate(dir string, certPEM, keyPEM []byte, now time.Time) (string, error) {
	keys, st, err := loadWithState(dir)
	if err != nil {
		return "", err
	}
	cert, err := parseOneCertPEM(certPEM)
	if err != nil {
		return "", fmt.Errorf("certificate: %w", err)
	}
	if err := checkIntermediate(cert, keys.Root); err != nil {
		return "", err
	}
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return "", fmt.Errorf("%s is not valid now (%s to %s)", cert.Subject.CommonName, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	if len(keyPEM) > maxIntermediatePEM {
		return "", fmt.Errorf("key: larger than %d bytes", maxIntermediatePEM)
	}
	key, err := parseKeyPEM(keyPEM, cert)
	if err != nil {
		return "", fmt.Errorf("key: %w", err)
	}
	name, err := nextIntermediateName(dir, st)
	if err != nil {
		return "", err
	}
	// Re-encoded: only the certificate and the key are written, never
	// whatever else the files held.
	cleanKey, err := pemKey(key)
	if err != nil {
		return "", err
	}
	return name, addIntermediate(dir, st, name, pemCert(cert), cleanKey)
}

// ActivateIntermediate makes name (a trusted intermediate) sign new
// device and proxy certificates; the one active before stays trusted.
func ActivateIntermediate(dir, name string) error {
	_, st, err := loadWithState(dir)
	if err != nil {
		return err
	}
	e, ok := st.entry(name)
	switch {
	case !ok:
		return fmt.Errorf("no device intermediate %q (see `devicegate ca intermediate list`)", name)
	case e.State == StateActive:
		return fmt.Errorf("%s is already active", name)
	case e.State == StateRetired:
		return fmt.Errorf("%s is retired and cannot issue again", name)
	}
	next := st
	for _, e := range st.Intermediates {
		if e.State == StateActive {
			next = next.with(e.Name, StateTrusted)
		}
	}
	return commitState(dir, next.with(name, StateActive))
}

// RetireIntermediate ends the overlap for name: proxies and the CA stop
// trusting it, and its certificates are refused as issued by a retired
// intermediate. The active intermediate cannot be retired.
func RetireIntermediate(dir, name string) error {
	_, st, err := loadWithState(dir)
	if err != nil {
		return err
	}
	e, ok := st.entry(name)
	switch {
	case !ok:
		return fmt.Errorf("no device intermediate %q (see `devicegate ca intermediate list`)", name)
	case e.State == StateActive:
		return fmt.Errorf("%s is the active intermediate: activate another one first", name)
	case e.State == StateRetired:
		return fmt.Errorf("%s is already retired", name)
	}
	return commitState(dir, st.with(name, StateRetired))
}

// ListIntermediates returns the device intermediates of dir, in the order
// of the state file.
func ListIntermediates(dir string) ([]DeviceCA, error) {
	keys, st, err := loadWithState(dir)
	if err != nil {
		return nil, err
	}
	byName := map[string]DeviceCA{}
	for _, d := range keys.allDeviceCAs() {
		byName[d.Name] = d
	}
	out := make([]DeviceCA, 0, len(st.Intermediates))
	for _, e := range st.Intermediates {
		out = append(out, byName[e.Name])
	}
	return out, nil
}

func loadWithState(dir string) (*Keys, deviceState, error) {
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); errors.Is(err, os.ErrNotExist) {
		return nil, deviceState{}, ErrNotInitialized
	}
	st, err := readDeviceState(dir)
	if err != nil {
		return nil, deviceState{}, err
	}
	keys, err := loadKeys(dir, st)
	if err != nil {
		return nil, deviceState{}, err
	}
	return keys, st, nil
}

// nextIntermediateName is the first "devices-<n>" that neither the state
// nor a file (left by an interrupted step) uses.
func nextIntermediateName(dir string, st deviceState) (string, error) {
	for n := 2; n < 1000000; n++ {
		name := originalDeviceName + "-" + strconv.Itoa(n)
		if _, listed := st.entry(name); listed {
			continue
		}
		if exists(filepath.Join(dir, certFileOf(name))) || exists(filepath.Join(dir, keyFileOf(name))) {
			continue
		}
		return name, nil
	}
	return "", errors.New("no free intermediate name")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// addIntermediate writes name's key (0600) and certificate as new files,
// then the state with name trusted. Until the state is written the files
// are unused; a failure removes them.
func addIntermediate(dir string, st deviceState, name string, certPEM, keyPEM []byte) error {
	keyPath, certPath := filepath.Join(dir, keyFileOf(name)), filepath.Join(dir, certFileOf(name))
	if err := writeNewFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNewFile(certPath, certPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	if err := commitState(dir, st.with(name, StateTrusted)); err != nil {
		os.Remove(certPath)
		os.Remove(keyPath)
		return err
	}
	return nil
}

// commitState writes st as the state file once the directory loads with it.
func commitState(dir string, st deviceState) error {
	data, err := st.marshal()
	if err != nil {
		return err
	}
	if _, err := loadKeys(dir, st); err != nil {
		return fmt.Errorf("not changed: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, DeviceStateFile), data, 0o644)
}

// resignRootCRL signs the root's (empty) CRL again, valid at least until
// notAfter, with a number above the current one's.
func resignRootCRL(keys *Keys, rootKey crypto.Signer, now, notAfter time.Time) ([]byte, error) {
	number, next := big.NewInt(1), notAfter
	if block, _ := pem.Decode(keys.RootCRLPEM); block != nil {
		old, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", RootCRLFile, err)
		}
		number = new(big.Int).Add(old.Number, big.NewInt(1))
		if old.NextUpdate.After(next) {
			next = old.NextUpdate
		}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: number, ThisUpdate: now, NextUpdate: next,
	}, keys.Root, rootKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// parseOneCertPEM reads exactly one PEM certificate.
func parseOneCertPEM(data []byte) (*x509.Certificate, error) {
	if len(data) > maxIntermediatePEM {
		return nil, fmt.Errorf("larger than %d bytes", maxIntermediatePEM)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block: give the intermediate alone")
	}
	return x509.ParseCertificate(block.Bytes)
}
