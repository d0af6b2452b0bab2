package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/devicegate/devicegate/store"
)

// dirSnapshot is every file of a directory with its mode: what a refused
// command must leave as it was.
func dirSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = info.Mode().String() + ":" + string(data)
	}
	return out
}

func mustUnchanged(t *testing.T, dir string, before map[string]string, what string) {
	t.Helper()
	if after := dirSnapshot(t, dir); !maps.Equal(before, after) {
		t.Fatalf("%s changed the CA directory: before %v, after %v", what, slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
}

func newCADir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := Init(dir, InitOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRootOfflineExportAndNewIntermediate: `ca root export` moves the root
// key out (a new 0600 file that reads back, then removed from the CA
// directory); the CA keeps loading; a new intermediate without the root
// key fails saying the root is offline and how to bring it back; a wrong,
// foreign or world-readable root key is refused and changes nothing; the
// exported key makes a trusted, not yet active intermediate and re-signs
// the root's CRL to cover it.
func TestRootOfflineExportAndNewIntermediate(t *testing.T) {
	dir := newCADir(t, "shop")
	offline := t.TempDir()
	other := newCADir(t, "other")

	existing := filepath.Join(offline, "existing.key")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirSnapshot(t, dir)
	for _, out := range []string{existing, filepath.Join(offline, "missing", "root.key"), filepath.Join(dir, RootKeyFile)} {
		if err := ExportRootKey(dir, out); err == nil {
			t.Fatalf("export to %s succeeded", out)
		}
		mustUnchanged(t, dir, before, "a refused export")
	}
	if data, _ := os.ReadFile(existing); string(data) != "keep me" {
		t.Fatal("a refused export overwrote an existing file")
	}

	exported := filepath.Join(offline, "root.key")
	if err := ExportRootKey(dir, exported); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(exported); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("exported key: %v, mode %v", err, st.Mode().Perm())
	}
	if exists(filepath.Join(dir, RootKeyFile)) {
		t.Fatal("the root key is still in the CA directory")
	}
	keys, err := LoadKeys(dir)
	if err != nil {
		t.Fatalf("the CA does not load without its root key: %v", err)
	}
	if _, err := readKey(exported, keys.Root); err != nil {
		t.Fatalf("the exported key is not the root's: %v", err)
	}
	if err := ExportRootKey(dir, filepath.Join(offline, "again.key")); !errors.Is(err, ErrRootOffline) {
		t.Fatalf("second export: %v, want ErrRootOffline", err)
	}

	// Everything that needs the root now says it is offline.
	before = dirSnapshot(t, dir)
	_, err = NewIntermediate(dir, "", time.Now())
	if !errors.Is(err, ErrRootOffline) || !strings.Contains(err.Error(), "--root-key") {
		t.Fatalf("new intermediate without the root key: %v", err)
	}
	mustUnchanged(t, dir, before, "new intermediate without the root key")

	readable := filepath.Join(offline, "readable.key")
	data, _ := os.ReadFile(exported)
	if err := os.WriteFile(readable, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"another CA's root key", filepath.Join(other, RootKeyFile), "does not match"},
		{"an intermediate's key", filepath.Join(dir, DeviceKeyFile), "does not match"},
		{"a key readable by others", readable, "chmod 600"},
		{"no such file", filepath.Join(offline, "nope.key"), "no such file"},
	} {
		t.Run("refused "+tc.name, func(t *testing.T) {
			_, err := NewIntermediate(dir, tc.file, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			mustUnchanged(t, dir, before, tc.name)
		})
	}

	name, err := NewIntermediate(dir, exported, time.Now())
	if err != nil || name != "devices-2" {
		t.Fatalf("new intermediate: %q %v", name, err)
	}
	keys, err = LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := deviceNames(keys.DeviceCAs); !slices.Equal(got, []string{"devices/active", "devices-2/trusted"}) {
		t.Fatalf("device intermediates %v", got)
	}
	if st, err := os.Stat(filepath.Join(dir, "devices-2.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("new intermediate key: %v, mode %v", err, st.Mode().Perm())
	}
	block, _ := pem.Decode(keys.RootCRLPEM)
	rootCRL, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if rootCRL.CheckSignatureFrom(keys.Root) != nil || rootCRL.Number.Int64() != 2 || rootCRL.NextUpdate.Before(keys.DeviceCAs[1].Cert.NotAfter) {
		t.Fatalf("root CRL not re-signed for the new intermediate: number %v, next update %v", rootCRL.Number, rootCRL.NextUpdate)
	}
	if exists(filepath.Join(dir, RootKeyFile)) {
		t.Fatal("making an intermediate brought the root key back into the CA directory")
	}
}

func deviceNames(cas []DeviceCA) []string {
	var out []string
	for _, d := range cas {
		out = append(out, d.Name+"/"+d.State)
	}
	return out
}

// TestRotateImportRefusesForeignIntermediates: `ca intermediate import`
// takes only a CA certificate signed by this CA's root, valid now, unable
// to sign further CAs, with its own key, and not already known; anything
// else is refused and leaves the directory as it was.
func TestRotateImportRefusesForeignIntermediates(t *testing.T) {
	dir := newCADir(t, "shop")
	other := newCADir(t, "other")
	keys, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := readKey(filepath.Join(dir, RootKeyFile), keys.Root)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good, goodKey := makeIntermediate(t, keys.Root, rootKey, func(*x509.Certificate) {})
	read := func(path string) []byte {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	leaf, leafKey := makeIntermediate(t, keys.Root, rootKey, func(c *x509.Certificate) {
		c.IsCA, c.KeyUsage, c.MaxPathLen, c.MaxPathLenZero = false, x509.KeyUsageDigitalSignature, -1, false
	})
	deep, deepKey := makeIntermediate(t, keys.Root, rootKey, func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = 1, false })
	expired, expiredKey := makeIntermediate(t, keys.Root, rootKey, func(c *x509.Certificate) { c.NotAfter = now.Add(-time.Hour) })
	noCRLSign, noCRLSignKey := makeIntermediate(t, keys.Root, rootKey, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign })
	_, strayKey := makeIntermediate(t, keys.Root, rootKey, func(*x509.Certificate) {})

	before := dirSnapshot(t, dir)
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"another root's intermediate", read(filepath.Join(other, DeviceCertFile)), read(filepath.Join(other, DeviceKeyFile)), "not signed by the root"},
		{"another root itself", read(filepath.Join(other, RootCertFile)), read(filepath.Join(other, RootKeyFile)), "not signed by the root"},
		{"our root", read(filepath.Join(dir, RootCertFile)), read(filepath.Join(dir, RootKeyFile)), "the root itself"},
		{"a leaf of our root", leaf, leafKey, "not a CA"},
		{"a CA that may sign CAs", deep, deepKey, "path length"},
		{"an expired intermediate", expired, expiredKey, "not valid now"},
		{"no CRL signing", noCRLSign, noCRLSignKey, "key usages"},
		{"a key that is not the certificate's", good, strayKey, "does not match"},
		{"our own intermediate again", read(filepath.Join(dir, DeviceCertFile)), read(filepath.Join(dir, DeviceKeyFile)), "has the key of"},
		{"our server intermediate", read(filepath.Join(dir, ServerCertFile)), read(filepath.Join(dir, ServerKeyFile)), "has the key of"},
		{"two certificates", append(append([]byte{}, good...), good...), goodKey, "more than one"},
		{"no PEM", []byte("garbage"), goodKey, "no PEM certificate"},
		{"no key", good, []byte("garbage"), "no PEM key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportIntermediate(dir, tc.cert, tc.key, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			mustUnchanged(t, dir, before, "a refused import")
		})
	}

	name, err := ImportIntermediate(dir, good, goodKey, now)
	if err != nil {
		t.Fatal(err)
	}
	keys, err = LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := deviceNames(keys.DeviceCAs); !slices.Equal(got, []string{"devices/active", name + "/trusted"}) {
		t.Fatalf("after import: %v", got)
	}
	if _, err := ImportIntermediate(dir, good, goodKey, now); err == nil || !strings.Contains(err.Error(), "has the key of") {
		t.Fatalf("importing the same intermediate twice: %v", err)
	}
}

// makeIntermediate signs a device intermediate with root's key, edited by
// edit, and returns its certificate and key in PEM.
func makeIntermediate(t *testing.T, root *x509.Certificate, rootKey crypto.Signer, edit func(*x509.Certificate)) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "imported Device CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 0, MaxPathLenZero: true,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = pemKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM
}

// TestRotateStateTransitions: activate and retire move roles as written,
// and every transition that makes no sense is refused without a change.
func TestRotateStateTransitions(t *testing.T) {
	dir := newCADir(t, "shop")
	if _, err := NewIntermediate(dir, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		op, name string
		want     string // "" = succeeds
		after    []string
	}{
		{"activate", "devices-9", "no device intermediate", nil},
		{"activate", "devices", "already active", nil},
		{"activate", "../root", "no device intermediate", nil},
		{"retire", "devices", "the active intermediate", nil},
		{"retire", "nope", "no device intermediate", nil},
		{"activate", "devices-2", "", []string{"devices-2/active", "devices/trusted"}},
		{"activate", "devices-2", "already active", nil},
		{"retire", "devices", "", []string{"devices-2/active"}},
		{"retire", "devices", "already retired", nil},
		{"activate", "devices", "retired", nil},
	}
	for _, s := range steps {
		before := dirSnapshot(t, dir)
		var err error
		if s.op == "activate" {
			err = ActivateIntermediate(dir, s.name)
		} else {
			err = RetireIntermediate(dir, s.name)
		}
		if s.want != "" {
			if err == nil || !strings.Contains(err.Error(), s.want) {
				t.Fatalf("%s %s: %v, want %q", s.op, s.name, err, s.want)
			}
			mustUnchanged(t, dir, before, s.op+" "+s.name)
			continue
		}
		if err != nil {
			t.Fatalf("%s %s: %v", s.op, s.name, err)
		}
		keys, err := LoadKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := deviceNames(keys.DeviceCAs); !slices.Equal(got, s.after) {
			t.Fatalf("after %s %s: %v, want %v", s.op, s.name, got, s.after)
		}
	}
	keys, _ := LoadKeys(dir)
	if keys.Device.Subject.CommonName != "shop Device CA 2" || len(keys.Retired) != 1 || keys.Retired[0].Name != "devices" {
		t.Fatalf("active %q, retired %v", keys.Device.Subject.CommonName, deviceNames(keys.Retired))
	}
	// A retired intermediate's key is not needed any more.
	if err := os.Remove(filepath.Join(dir, DeviceKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeys(dir); err != nil {
		t.Fatalf("a retired intermediate's key is still required: %v", err)
	}
	// A state file naming an intermediate whose files are gone does not load.
	if err := os.Remove(filepath.Join(dir, "devices-2.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeys(dir); err == nil {
		t.Fatal("loaded without the active intermediate's key")
	}
}

// TestRotateRevocationPerIssuer: during the overlap each trusted
// intermediate signs its own CRL and OCSP answers, so a certificate of the
// previous intermediate is checked against that intermediate's CRL (RFC
// 5280: a CRL covers its issuer's certificates): revoking a device of
// either shows on the right issuer's CRL, at its distribution point, and
// over OCSP; new certificates and renewals come from the new
// intermediate. After the retirement the old one answers nothing.
func TestRotateRevocationPerIssuer(t *testing.T) {
	f := newFixture(t)
	caDir := filepath.Join(f.dir, "ca")
	oldA := f.issue(f.alice)
	oldC := f.issue(f.alice)
	oldCert := f.ca.Keys().Device

	if _, err := NewIntermediate(caDir, "", f.now); err != nil {
		t.Fatal(err)
	}
	if err := ActivateIntermediate(caDir, "devices-2"); err != nil {
		t.Fatal(err)
	}
	f.restart(caDir) // the CA restarts with the new state
	url := startServer(t, f)
	f.ca.opts.PublicURL = url
	newCert := f.ca.Keys().Device
	if bytes.Equal(newCert.Raw, oldCert.Raw) {
		t.Fatal("the new intermediate is not active")
	}
	newB := f.issue(f.protectedSub("bob", 2))
	if !bytes.Equal(newB.Chain[1].Raw, newCert.Raw) || newB.Chain[0].CheckSignatureFrom(newCert) != nil {
		t.Fatal("a new enrollment is not issued by the new intermediate")
	}
	if want := []string{url + "/crl/devices-2"}; !slices.Equal(newB.Chain[0].CRLDistributionPoints, want) {
		t.Fatalf("new certificate names CRL %q, want %q", newB.Chain[0].CRLDistributionPoints, want)
	}

	// A device of the old intermediate renews into the new one.
	if _, err := f.store.AllowEarlyRenewal(f.ctx, f.tenant.ID, oldC.Device.ID, f.now.Add(24*time.Hour), testActor); err != nil {
		t.Fatal(err)
	}
	renewed, err := f.ca.Renew(f.ctx, oldC.Chain[0], newCSR(t, newKey(t), nil))
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Chain[0].CheckSignatureFrom(newCert) != nil {
		t.Fatal("a renewal is not issued by the new intermediate")
	}

	for _, is := range []*Issued{oldA, newB} {
		if _, err := f.ca.RevokeDevice(f.ctx, is.Device.TenantID, is.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.ca.revs.refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	// The PEM bundle: the active intermediate's CRL, the previous one's,
	// the root's; each signed by its issuer and listing both serials.
	_, bundle := f.ca.CRL()
	crls := parseCRLs(t, bundle)
	if len(crls) != 3 {
		t.Fatalf("CRL bundle has %d CRLs, want 3", len(crls))
	}
	for i, issuer := range []*x509.Certificate{newCert, oldCert, f.ca.Keys().Root} {
		if err := crls[i].CheckSignatureFrom(issuer); err != nil {
			t.Fatalf("CRL %d not signed by %s: %v", i, issuer.Subject.CommonName, err)
		}
	}
	for i, crl := range crls[:2] {
		for _, is := range []*Issued{oldA, newB} {
			if _, ok := crlHas(crl, is.Chain[0].SerialNumber); !ok {
				t.Fatalf("CRL %d lacks %s", i, SerialHex(is.Chain[0]))
			}
		}
	}
	// Each certificate's distribution point serves its issuer's CRL.
	c := httpClient(f, nil)
	for _, tc := range []struct {
		url    string
		issuer *x509.Certificate
		cert   *x509.Certificate
	}{{url + "/crl", oldCert, oldA.Chain[0]}, {newB.Chain[0].CRLDistributionPoints[0], newCert, newB.Chain[0]}} {
		resp, err := c.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.CheckSignatureFrom(tc.issuer) != nil {
			t.Fatalf("%s: not the CRL of %s (%v)", tc.url, tc.issuer.Subject.CommonName, err)
		}
		if _, ok := crlHas(crl, tc.cert.SerialNumber); !ok {
			t.Fatalf("%s lacks the revoked certificate", tc.url)
		}
	}
	if resp, err := c.Get(url + "/crl/devices-7"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("CRL of an unknown intermediate: %v %v", resp.StatusCode, err)
	}
	// OCSP: each issuer answers for its own certificates.
	for _, tc := range []struct {
		cert, issuer *x509.Certificate
		status       int
	}{{oldA.Chain[0], oldCert, ocsp.Revoked}, {newB.Chain[0], newCert, ocsp.Revoked}, {renewed.Chain[0], newCert, ocsp.Good}} {
		if got := ocspAnswer(t, f, tc.cert, tc.issuer); got == nil || got.Status != tc.status {
			t.Fatalf("OCSP for %s: %+v, want status %d", SerialHex(tc.cert), got, tc.status)
		}
	}

	// Retired: the old intermediate signs no CRL and answers no OCSP.
	if err := RetireIntermediate(caDir, "devices"); err != nil {
		t.Fatal(err)
	}
	f.restart(caDir)
	_, bundle = f.ca.CRL()
	if crls := parseCRLs(t, bundle); len(crls) != 2 || crls[0].CheckSignatureFrom(newCert) != nil {
		t.Fatalf("after retirement the bundle has %d CRLs", len(crls))
	}
	if got := ocspAnswer(t, f, oldA.Chain[0], oldCert); got != nil {
		t.Fatalf("OCSP answered for a retired intermediate: %+v", got)
	}
	if len(f.ca.Keys().DeviceCAs) != 1 {
		t.Fatal("the retired intermediate is still trusted by the CA")
	}
}

// restart replaces the fixture's authority with one over dir as it is now.
func (f *fixture) restart(dir string) {
	f.t.Helper()
	keys, err := LoadKeys(dir)
	if err != nil {
		f.t.Fatal(err)
	}
	opts := f.ca.opts
	opts.Now = func() time.Time { return f.now }
	if f.ca, err = New(f.ctx, keys, f.store, opts); err != nil {
		f.t.Fatal(err)
	}
}

func parseCRLs(t *testing.T, bundle []byte) []*x509.RevocationList {
	t.Helper()
	var out []*x509.RevocationList
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, crl)
	}
}

// ocspAnswer asks the CA about cert as issued by issuer; nil when the CA
// answers "unauthorized" (not an issuer it speaks for).
func ocspAnswer(t *testing.T, f *fixture, cert, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	reqDER, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil {
		t.Fatal(err)
	}
	respDER, err := f.ca.ocspStatus(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(respDER, ocsp.UnauthorizedErrorResponse) {
		return nil
	}
	resp, err := ocsp.ParseResponseForCert(respDER, cert, issuer)
	if err != nil {
		t.Fatalf("OCSP response not signed by %s: %v", issuer.Subject.CommonName, err)
	}
	return resp
}

// FuzzParseDeviceState: the state file parser never panics, and whatever
// it accepts is valid and survives a round trip unchanged.
func FuzzParseDeviceState(f *testing.F) {
	f.Add([]byte(`{"version":1,"intermediates":[{"name":"devices","state":"active"}]}`))
	f.Add([]byte(`{"version":1,"intermediates":[{"name":"devices","state":"retired"},{"name":"devices-2","state":"active"},{"name":"devices-3","state":"trusted"}]}`))
	f.Add([]byte(`{"version":1,"intermediates":[{"name":"../root","state":"active"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseDeviceState(data)
		if err != nil {
			return
		}
		if st.validate() != nil {
			t.Fatal("accepted an invalid state")
		}
		for _, e := range st.Intermediates {
			if strings.ContainsAny(e.Name, "/\\.") {
				t.Fatalf("accepted name %q", e.Name)
			}
		}
		out, err := st.marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseDeviceState(out)
		if err != nil || !slices.Equal(again.Intermediates, st.Intermediates) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
