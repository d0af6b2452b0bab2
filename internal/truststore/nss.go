package truststore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// NSSDatabasesIn lists the NSS databases of home's browsers that exist:
// Chromium's (also as a snap) and every Firefox profile (classic, snap and
// flatpak). Only SQL databases (cert9.db) are used; the old DBM format is
// read-only in current NSS.
func NSSDatabasesIn(home string) []string {
	var dbs []string
	for _, dir := range []string{
		filepath.Join(home, ".pki", "nssdb"),
		filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb"),
	} {
		if exists(filepath.Join(dir, "cert9.db")) {
			dbs = append(dbs, dir)
		}
	}
	for _, profiles := range []string{
		filepath.Join(home, ".mozilla", "firefox"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox"),
		filepath.Join(home, ".var", "app", "org.mozilla.firefox", ".mozilla", "firefox"),
	} {
		matches, _ := filepath.Glob(filepath.Join(profiles, "*", "cert9.db"))
		for _, m := range matches {
			dbs = append(dbs, filepath.Dir(m))
		}
	}
	return dbs
}

// ChromiumNSS is the database Chromium on Linux reads for home.
func ChromiumNSS(home string) string { return filepath.Join(home, ".pki", "nssdb") }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// certutilPath finds NSS's certutil (Debian: libnss3-tools).
func certutilPath() (string, error) {
	p, err := exec.LookPath("certutil")
	if err != nil {
		return "", errors.New("certutil (NSS tools) is not installed: apt-get install libnss3-tools (Debian/Ubuntu), dnf install nss-tools (Fedora)")
	}
	return p, nil
}

func createNSS(dir string) error {
	certutil, err := certutilPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	_, err = runTool(certutil, "-N", "-d", "sql:"+dir, "--empty-password")
	return err
}

// nssAdd adds the certificate as a trusted CA for TLS servers ("C,,") only:
// not for e-mail or code signing.
func nssAdd(dir, name, pemFile string) error {
	certutil, err := certutilPath()
	if err != nil {
		return err
	}
	_, err = runTool(certutil, "-A", "-d", "sql:"+dir, "-n", name, "-t", "C,,", "-i", pemFile)
	return err
}

// nssDelete removes every certificate stored under name (NSS can hold
// several under one nickname) and says how many.
func nssDelete(dir, name string) (int, error) {
	certutil, err := certutilPath()
	if err != nil {
		return 0, err
	}
	n := 0
	for n < 100 {
		names, err := nssList(dir)
		if err != nil {
			return n, err
		}
		if !slices.Contains(names, name) {
			return n, nil
		}
		if _, err := runTool(certutil, "-D", "-d", "sql:"+dir, "-n", name); err != nil {
			return n, err
		}
		n++
	}
	return n, fmt.Errorf("%s: %q still present after %d deletions", dir, name, n)
}

func nssList(dir string) ([]string, error) {
	certutil, err := certutilPath()
	if err != nil {
		return nil, err
	}
	out, err := runTool(certutil, "-L", "-d", "sql:"+dir)
	if err != nil {
		return nil, err
	}
	return parseCertutilList(out), nil
}

// trustColumn is certutil's trust attribute column, e.g. "CT,C,C" or "u,u,u".
var trustColumn = regexp.MustCompile(`\s+[a-zA-Z]*,[a-zA-Z]*,[a-zA-Z]*\s*$`)

// parseCertutilList reads the nicknames of `certutil -L`: after a header of
// column titles, one line per certificate with the nickname, spaces and the
// trust attributes.
func parseCertutilList(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		loc := trustColumn.FindStringIndex(line)
		if loc == nil || strings.HasPrefix(line, " ") {
			continue // blank, the titles or the "SSL,S/MIME,JAR/XPI" legend
		}
		if name := strings.TrimSpace(line[:loc[0]]); name != "" {
			names = append(names, name)
		}
	}
	return names
}
