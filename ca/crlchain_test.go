package ca

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/store"
)

// nginx (ssl_crl) and HAProxy (crl-file) check revocation for every CA
// certificate of the chain (OpenSSL's CRL_CHECK_ALL): the CRL file must
// hold the root's CRL for the device intermediate besides the device
// CRL. openssl verify -crl_check_all does the same check.
func TestCRLFileServesNginxAndHAProxy(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := newFixture(t)
	keep, gone := f.issue(f.alice), f.issue(f.alice)
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, gone.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := write("root.pem", f.ca.Keys().RootPEM)
	inter := write("devices.pem", f.ca.Keys().DevicePEM)
	for _, tc := range []struct {
		name string
		leaf *Issued
		want string // in openssl's output
	}{
		{"active", keep, ": OK"},
		{"revoked", gone, "certificate revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := write(tc.name+".pem", pemCert(tc.leaf.Chain[0]))
			out, _ := exec.Command("openssl", "verify", "-crl_check_all", "-CAfile", root, "-untrusted", inter,
				"-CRLfile", f.ca.opts.CRLFile, "-purpose", "sslclient", leaf).CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("openssl verify -crl_check_all: %s, want %q", out, tc.want)
			}
		})
	}
}

// A CA made before root.crl existed still loads (without it); a root.crl
// that is not the root's stops LoadKeys.
func TestLoadKeysRootCRL(t *testing.T) {
	other := t.TempDir()
	if err := Init(other, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.ReadFile(filepath.Join(other, RootCRLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		rootCRL []byte // nil: no file
		ok      bool
	}{
		{"missing (older CA)", nil, true},
		{"another root's", foreign, false},
		{"not a CRL", []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Init(dir, InitOptions{}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, RootCRLFile)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if tc.rootCRL != nil {
				if err := os.WriteFile(path, tc.rootCRL, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			k, err := LoadKeys(dir)
			if (err == nil) != tc.ok || (err == nil && k.RootCRLPEM != nil) {
				t.Fatalf("LoadKeys: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
