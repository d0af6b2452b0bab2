// Package truststore installs a devicegate root CA as a trust anchor on
// this computer, as mkcert does for its own root: into the operating
// system's store and into the NSS databases that Chromium and Firefox read
// on Linux. It only ever adds, finds and removes entries it named itself
// ("devicegate root <fingerprint prefix>"), so uninstall cannot touch a
// root someone else installed.
package truststore

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// NamePrefix starts the name of every entry this package writes.
const NamePrefix = "devicegate root "

// Installer puts a root into the stores it is told to use. The zero value
// does nothing; Default fills in this computer's stores.
type Installer struct {
	// System is the operating system's store, nil to leave it alone.
	System *SystemStore
	// NSSDatabases are NSS database directories (without "sql:").
	NSSDatabases []string
	// CreateNSS is the database created when none exists yet (Chromium
	// reads $HOME/.pki/nssdb but creates it only on its first start).
	CreateNSS string
	// Log receives one line per step; nil discards them.
	Log io.Writer
	// Now is the clock that decides whether the root is still valid.
	Now func() time.Time
}

// Name is the nickname and file name stem of root's entries.
func Name(root *x509.Certificate) string {
	sum := sha256.Sum256(root.Raw)
	return NameForFingerprint(sum[:])
}

// NameForFingerprint is Name for the root with this SHA-256 fingerprint, so
// uninstall needs neither the file nor the CA.
func NameForFingerprint(sha256Sum []byte) string {
	return NamePrefix + hex.EncodeToString(sha256Sum[:8])
}

// CheckRoot refuses anything but a currently valid, self-signed CA
// certificate: a trust anchor is never a leaf or an intermediate.
func CheckRoot(root *x509.Certificate, now time.Time) error {
	switch {
	case !root.BasicConstraintsValid || !root.IsCA:
		return errors.New("the certificate is not a CA certificate: refusing to trust it as a root")
	case root.CheckSignatureFrom(root) != nil:
		return errors.New("the certificate is not self-signed: refusing to trust it as a root")
	case now.Before(root.NotBefore) || now.After(root.NotAfter):
		return fmt.Errorf("the root is not valid now (valid %s to %s)", root.NotBefore.Format(time.DateOnly), root.NotAfter.Format(time.DateOnly))
	}
	return nil
}

// Install adds root to every configured store. It is all or nothing: when a
// step fails, the steps already done are undone and the error names the
// store that failed.
func (in *Installer) Install(root *x509.Certificate) error {
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	if err := CheckRoot(root, now()); err != nil {
		return err
	}
	pemFile, err := writeTempPEM(root)
	if err != nil {
		return err
	}
	defer os.Remove(pemFile)

	name := Name(root)
	var undo []func() error
	rollback := func(cause error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				cause = fmt.Errorf("%w (and undoing an earlier step failed: %v)", cause, err)
			}
		}
		return cause
	}
	dbs := in.NSSDatabases
	if len(dbs) == 0 && in.CreateNSS != "" {
		if err := createNSS(in.CreateNSS); err != nil {
			return err
		}
		in.logf("created the NSS database %s", in.CreateNSS)
		dbs = []string{in.CreateNSS}
	}
	for _, db := range dbs {
		if err := nssAdd(db, name, pemFile); err != nil {
			return rollback(err)
		}
		in.logf("added %q to the NSS database %s (Chromium, Firefox)", name, db)
		undo = append(undo, func() error { _, err := nssDelete(db, name); return err })
	}
	if in.System != nil {
		if err := in.System.add(name, root); err != nil {
			return rollback(err)
		}
		in.logf("added %s to the system store (%s)", name, in.System.Dir)
	}
	return nil
}

// Uninstall removes the entries named name (or, with name "", every entry
// this package wrote) from every configured store, and says how many it
// removed.
func (in *Installer) Uninstall(name string) (int, error) {
	match := func(n string) bool { return strings.HasPrefix(n, NamePrefix) && len(n) > len(NamePrefix) }
	if name != "" {
		match = func(n string) bool { return n == name }
	}
	removed := 0
	var errs []error
	for _, db := range in.NSSDatabases {
		names, err := nssList(db)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			if !match(n) {
				continue
			}
			k, err := nssDelete(db, n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			removed += k
			in.logf("removed %q from the NSS database %s", n, db)
		}
	}
	if in.System != nil {
		k, err := in.System.remove(match)
		if err != nil {
			errs = append(errs, err)
		}
		if k > 0 {
			in.logf("removed %d entr%s from the system store (%s)", k, plural(k, "y", "ies"), in.System.Dir)
		}
		removed += k
	}
	return removed, errors.Join(errs...)
}

func (in *Installer) logf(format string, args ...any) {
	if in.Log != nil {
		fmt.Fprintf(in.Log, format+"\n", args...)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// writeTempPEM writes root to a private temporary file for certutil.
func writeTempPEM(root *x509.Certificate) (string, error) {
	f, err := os.CreateTemp("", "devicegate-root-*.pem")
	if err != nil {
		return "", err
	}
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// runTool runs an external tool and folds its output into the error.
func runTool(name string, args ...string) ([]byte, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return out, nil
}
