package truststore

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SystemStore is a Linux distribution's anchor directory and the command
// that rebuilds the system bundle from it (OpenSSL, curl, Go and most
// programs read that bundle).
type SystemStore struct {
	Dir    string   // where anchors are dropped, e.g. /usr/local/share/ca-certificates
	Ext    string   // file extension the update command picks up, e.g. ".crt"
	Update []string // e.g. update-ca-certificates; the extra args a test needs included
	// Fresh is appended to Update after a removal, when the tool needs it
	// to drop links to removed files (update-ca-certificates --fresh).
	Fresh []string
	// Sudo prefixes the writes and the update when this process is not
	// root (mkcert does the same); empty when running as root.
	Sudo []string
}

// DetectSystemStore returns Debian/Ubuntu's or Fedora/RHEL's store, or an
// error saying this system's store is unknown.
func DetectSystemStore() (*SystemStore, error) {
	var sudo []string
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err != nil {
			return nil, errors.New("adding to the system store needs root and sudo is not installed: run as root, or use --no-system")
		}
		sudo = []string{"sudo"}
	}
	switch {
	case toolExists("update-ca-certificates") && exists("/usr/local/share/ca-certificates"):
		return &SystemStore{Dir: "/usr/local/share/ca-certificates", Ext: ".crt",
			Update: []string{"update-ca-certificates"}, Fresh: []string{"--fresh"}, Sudo: sudo}, nil
	case toolExists("update-ca-trust") && exists("/etc/pki/ca-trust/source/anchors"):
		return &SystemStore{Dir: "/etc/pki/ca-trust/source/anchors", Ext: ".pem",
			Update: []string{"update-ca-trust", "extract"}, Sudo: sudo}, nil
	}
	return nil, errors.New("no known system trust store (update-ca-certificates or update-ca-trust): use --no-system and add the root by hand")
}

func toolExists(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// fileName turns "devicegate root 0123abcd..." into a file name without spaces.
func (s *SystemStore) fileName(name string) string {
	return strings.ReplaceAll(name, " ", "-") + s.Ext
}

func (s *SystemStore) add(name string, root *x509.Certificate) error {
	tmp, err := os.CreateTemp("", "devicegate-anchor-*"+s.Ext)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	dst := filepath.Join(s.Dir, s.fileName(name))
	if _, err := s.run("install", "-m", "0644", tmp.Name(), dst); err != nil {
		return err
	}
	if _, err := s.run(s.Update...); err != nil {
		_, _ = s.run("rm", "-f", dst)
		return err
	}
	return nil
}

// remove deletes the anchors whose names match and rebuilds the bundle once.
func (s *SystemStore) remove(match func(name string) bool) (int, error) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return 0, err
	}
	var files []string
	for _, e := range entries {
		stem := strings.TrimSuffix(e.Name(), s.Ext)
		if stem == e.Name() {
			continue
		}
		if match(strings.ReplaceAll(stem, "-", " ")) {
			files = append(files, filepath.Join(s.Dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return 0, nil
	}
	if _, err := s.run(append([]string{"rm", "-f", "--"}, files...)...); err != nil {
		return 0, err
	}
	_, err = s.run(append(append([]string{}, s.Update...), s.Fresh...)...)
	return len(files), err
}

func (s *SystemStore) run(args ...string) ([]byte, error) {
	full := append(append([]string{}, s.Sudo...), args...)
	return runTool(full[0], full[1:]...)
}
