package ca

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Keys is the online key material of a running CA: the root certificate
// (no key), the device intermediates with their keys and the server
// intermediate with its key.
type Keys struct {
	Root       *x509.Certificate
	Device     *x509.Certificate // the active device intermediate: signs new certificates
	DeviceKey  crypto.Signer
	Server     *x509.Certificate
	ServerKey  crypto.Signer
	RootPEM    []byte
	DevicePEM  []byte // the active device intermediate
	ServerPEM  []byte
	RootCRLPEM []byte // the root's CRL for the intermediates (nil: a CA made before it existed)
	// DeviceCAs are the trusted device intermediates, the active one
	// first: devices of each pass, each signs its own CRL and OCSP answers.
	DeviceCAs []DeviceCA
	// Retired are device intermediates trusted no more (no key): their
	// certificates are refused and named as such.
	Retired    []DeviceCA
	TrustedPEM []byte // every trusted device intermediate, PEM: what proxies verify devices with
	rootPool   *x509.CertPool
	devicePool *x509.CertPool
}

// DeviceCA is one device intermediate of the CA directory.
type DeviceCA struct {
	Name  string // "devices", "devices-2", ...: its files are Name.crt and Name.key
	State string // StateActive, StateTrusted or StateRetired
	Cert  *x509.Certificate
	Key   crypto.Signer // nil for a retired one
	PEM   []byte
}

// LoadKeys reads a CA directory written by Init. The root key is not read.
func LoadKeys(dir string) (*Keys, error) {
	if _, err := os.Stat(filepath.Join(dir, RootCertFile)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotInitialized
	}
	st, err := readDeviceState(dir)
	if err != nil {
		return nil, err
	}
	return loadKeys(dir, st)
}

// loadKeys reads dir with the device intermediates of st: a state is
// checked this way before it is written.
func loadKeys(dir string, st deviceState) (*Keys, error) {
	k := &Keys{}
	var err error
	if k.Root, k.RootPEM, err = readCert(filepath.Join(dir, RootCertFile)); err != nil {
		return nil, err
	}
	if k.Server, k.ServerPEM, err = readCert(filepath.Join(dir, ServerCertFile)); err != nil {
		return nil, err
	}
	if k.ServerKey, err = readKey(filepath.Join(dir, ServerKeyFile), k.Server); err != nil {
		return nil, err
	}
	if err := checkIntermediate(k.Server, k.Root); err != nil {
		return nil, err
	}
	if err := k.loadDeviceCAs(dir, st); err != nil {
		return nil, err
	}
	if k.RootCRLPEM, err = readRootCRL(filepath.Join(dir, RootCRLFile), k.Root); err != nil {
		return nil, err
	}
	k.rootPool = x509.NewCertPool()
	k.rootPool.AddCert(k.Root)
	k.devicePool = x509.NewCertPool()
	for _, d := range k.DeviceCAs {
		k.devicePool.AddCert(d.Cert)
		k.TrustedPEM = append(k.TrustedPEM, d.PEM...)
	}
	return k, nil
}

// loadDeviceCAs reads the device intermediates of st: every one must be
// signed by the root, and the trusted ones must have their keys.
func (k *Keys) loadDeviceCAs(dir string, st deviceState) error {
	keys := map[string]string{} // public key -> name: one key, one intermediate
	for _, e := range st.Intermediates {
		d := DeviceCA{Name: e.Name, State: e.State}
		var err error
		if d.Cert, d.PEM, err = readCert(filepath.Join(dir, certFileOf(e.Name))); err != nil {
			return err
		}
		if err := checkIntermediate(d.Cert, k.Root); err != nil {
			return err
		}
		spki := string(d.Cert.RawSubjectPublicKeyInfo)
		if other, dup := keys[spki]; dup || spki == string(k.Server.RawSubjectPublicKeyInfo) {
			return fmt.Errorf("device intermediate %s has the key of %s", e.Name, cmp.Or(other, "the server intermediate"))
		}
		keys[spki] = e.Name
		if e.State == StateRetired {
			k.Retired = append(k.Retired, d)
			continue
		}
		if d.Key, err = readKey(filepath.Join(dir, keyFileOf(e.Name)), d.Cert); err != nil {
			return err
		}
		if e.State == StateActive {
			k.Device, k.DeviceKey, k.DevicePEM = d.Cert, d.Key, d.PEM
			k.DeviceCAs = append([]DeviceCA{d}, k.DeviceCAs...)
		} else {
			k.DeviceCAs = append(k.DeviceCAs, d)
		}
	}
	return nil
}

// checkIntermediate accepts a CA certificate signed by root that may sign
// certificates but no further CAs.
func checkIntermediate(c, root *x509.Certificate) error {
	name := c.Subject.CommonName
	if bytes.Equal(c.RawSubjectPublicKeyInfo, root.RawSubjectPublicKeyInfo) {
		return fmt.Errorf("%s is the root itself, not an intermediate", name)
	}
	if err := c.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("%s is not signed by the root: %w", name, err)
	}
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return fmt.Errorf("%s is not a CA certificate", name)
	case c.MaxPathLen != 0 || !c.MaxPathLenZero:
		return fmt.Errorf("%s may sign further CAs (path length must be 0)", name)
	case c.KeyUsage&x509.KeyUsageCertSign == 0 || c.KeyUsage&x509.KeyUsageCRLSign == 0:
		return fmt.Errorf("%s lacks the certificate and CRL signing key usages", name)
	case !bytes.Equal(c.RawIssuer, root.RawSubject):
		return fmt.Errorf("%s does not name the root as its issuer", name)
	}
	return nil
}

// crlPath is where the active device intermediate's CRL is served:
// /crl for the one `ca init` made (as always), /crl/<name> for later ones,
// so each certificate names its own issuer's CRL.
func (k *Keys) crlPath() string {
	if k.DeviceCAs[0].Name == originalDeviceName {
		return "/crl"
	}
	return "/crl/" + k.DeviceCAs[0].Name
}

// issuerOf returns the trusted device intermediate that signed leaf, or nil.
func (k *Keys) issuerOf(leaf *x509.Certificate) *DeviceCA {
	for i := range k.DeviceCAs {
		if leaf.CheckSignatureFrom(k.DeviceCAs[i].Cert) == nil {
			return &k.DeviceCAs[i]
		}
	}
	return nil
}

// DevicePool holds only the trusted device intermediates: client
// certificates must chain to one (a server certificate from the same root
// does not).
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
	signer, err := parseKeyPEM(data, cert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return signer, nil
}

// parseKeyPEM reads a PEM PKCS#8 signing key that must be cert's.
func parseKeyPEM(data []byte, cert *x509.Certificate) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("does not match %s", cert.Subject.CommonName)
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
