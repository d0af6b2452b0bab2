package client

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// checkOutDir refuses to replace an existing key unless asked to.
func checkOutDir(dir string, overwrite bool) error {
	if _, err := os.Stat(filepath.Join(dir, "key.pem")); err == nil && !overwrite {
		return fmt.Errorf("%s already holds a key.pem: choose another --out directory", dir)
	}
	return nil
}

// writeFiles writes every file under a temporary name first and renames
// them only when all were written, so a failure leaves nothing half-done.
func writeFiles(o Options, key *ecdsa.PrivateKey, chain, roots []*x509.Certificate) ([]string, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	p12, err := pkcs12.Modern2023.Encode(key, chain[0], chain[1:], o.P12Password)
	if err != nil {
		return nil, fmt.Errorf("build PKCS#12: %w", err)
	}
	var chainPEM, rootPEM []byte
	for _, c := range chain {
		chainPEM = append(chainPEM, pemCert(c)...)
	}
	for _, c := range roots {
		rootPEM = append(rootPEM, pemCert(c)...)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{"cert.pem", pemCert(chain[0]), 0o644},
		{"chain.pem", chainPEM, 0o644},
		{"root.pem", rootPEM, 0o644},
		{"device.p12", p12, 0o600},
	}
	if err := os.MkdirAll(o.OutDir, 0o700); err != nil {
		return nil, err
	}
	var temps []string
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	for _, f := range files {
		tmp, err := os.CreateTemp(o.OutDir, "."+f.name+".tmp*")
		if err != nil {
			cleanup()
			return nil, err
		}
		temps = append(temps, tmp.Name())
		err = tmp.Chmod(f.mode)
		if err == nil {
			_, err = tmp.Write(f.data)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			cleanup()
			return nil, err
		}
	}
	var written []string
	for i, f := range files {
		dst := filepath.Join(o.OutDir, f.name)
		if err := os.Rename(temps[i], dst); err != nil {
			cleanup()
			return nil, err
		}
		written = append(written, dst)
	}
	return written, nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// ReadPasswordFile returns the first line of a password file.
func ReadPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New(path + ": the first line is empty")
	}
	return line, nil
}
