package ca

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrRootOffline means a command needs the root key and the CA directory
// no longer has it (`devicegate ca root export` moved it offline).
var ErrRootOffline = errors.New("the root key is offline")

// rootKeyHelp says how to bring the root key back for one command.
const rootKeyHelp = "bring it back for this command with --root-key FILE (the file `devicegate ca root export` wrote, e.g. on the offline medium)"

// ExportRootKey moves the root key out of dir: it writes it to out (a new
// file, 0600, refused if out exists), reads it back and checks it against
// the root certificate, and only then removes dir's copy. The CA keeps
// working with its intermediates; what needs the root (a new
// intermediate) then asks for the exported file.
func ExportRootKey(dir, out string) error {
	keys, err := LoadKeys(dir)
	if err != nil {
		return err
	}
	inDir := filepath.Join(dir, RootKeyFile)
	if _, err := os.Stat(inDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w already: %s is not in %s", ErrRootOffline, RootKeyFile, dir)
	}
	if _, err := readKey(inDir, keys.Root); err != nil {
		return err
	}
	if same, _ := sameFile(inDir, out); same {
		return errors.New("--out is the CA directory's own root key")
	}
	data, err := os.ReadFile(inDir)
	if err != nil {
		return err
	}
	if err := writeNewFile(out, data, 0o600); err != nil {
		return err
	}
	if _, err := readKey(out, keys.Root); err != nil {
		// The copy is not the key: keep the original where it is.
		return fmt.Errorf("the exported copy does not read back (%v); %s kept", err, inDir)
	}
	if err := os.Remove(inDir); err != nil {
		return err
	}
	return syncDir(dir)
}

// readRootKey reads the root key from file, or from dir when file is
// empty; a missing key is ErrRootOffline with how to bring it back, a key
// that is not the root's is refused.
func readRootKey(dir, file string, keys *Keys) (crypto.Signer, error) {
	if file == "" {
		file = filepath.Join(dir, RootKeyFile)
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is not in %s; %s", ErrRootOffline, RootKeyFile, dir, rootKeyHelp)
		}
	}
	key, err := readKey(file, keys.Root)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	return key, nil
}

// writeNewFile creates path with mode (refusing an existing one), writes
// data and syncs it; a failed write removes what it made.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
