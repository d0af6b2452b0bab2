package truststore

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/internal/testpki"
)

// requireToolsEnv makes a missing certutil or update-ca-certificates a
// failure instead of a skip; scripts/test.sh sets it with CI=true.
const requireToolsEnv = "DEVICEGATE_REQUIRE_TRUSTTOOLS"

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"certutil", "update-ca-certificates"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(requireToolsEnv) != "" {
				t.Fatalf("%s is required (%s is set)", tool, requireToolsEnv)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

// machine is one computer's stores inside the test's temp dir: a Chromium
// NSS database under HOME, a Firefox profile, and a Debian system store
// rebuilt by the real update-ca-certificates.
type machine struct {
	home, firefox string
	sys           *SystemStore
	bundle        string // the system bundle programs read
	distro        *x509.Certificate
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	needTools(t)
	dir := t.TempDir()
	m := &machine{home: filepath.Join(dir, "home")}
	m.firefox = filepath.Join(m.home, ".mozilla", "firefox", "abcd.default-esr")
	for _, db := range []string{ChromiumNSS(m.home), m.firefox} {
		if err := createNSS(db); err != nil {
			t.Fatal(err)
		}
	}
	local, certs, etc, hooks := filepath.Join(dir, "local"), filepath.Join(dir, "share"), filepath.Join(dir, "etc"), filepath.Join(dir, "hooks")
	for _, d := range []string{local, certs, etc, hooks} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// One root of the distribution, as on a real system (with none, Debian's
	// tool leaves the old bundle in place once the last anchor is gone).
	m.distro = testpki.New(t).Root
	if err := os.WriteFile(filepath.Join(certs, "distro.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.distro.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "ca-certificates.conf")
	if err := os.WriteFile(conf, []byte("distro.crt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.sys = &SystemStore{Dir: local, Ext: ".crt", Fresh: []string{"--fresh"},
		Update: []string{"update-ca-certificates", "--certsconf", conf, "--certsdir", certs,
			"--localcertsdir", local, "--etccertsdir", etc, "--hooksdir", hooks}}
	m.bundle = filepath.Join(etc, "ca-certificates.crt")
	if _, err := runTool(m.sys.Update[0], m.sys.Update[1:]...); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *machine) installer() *Installer {
	return &Installer{System: m.sys, NSSDatabases: NSSDatabasesIn(m.home)}
}

// state is what a test compares before and after: the nicknames of every
// NSS database, the anchor files and the system bundle.
func (m *machine) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, db := range NSSDatabasesIn(m.home) {
		names, err := nssList(db)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(db + ": " + strings.Join(names, "|") + "\n")
	}
	files, _ := filepath.Glob(filepath.Join(m.sys.Dir, "*"))
	b.WriteString("anchors: " + strings.Join(files, "|") + "\n")
	bundle, _ := os.ReadFile(m.bundle)
	b.Write(bundle)
	return b.String()
}

func (m *machine) bundleHas(t *testing.T, c *x509.Certificate) bool {
	bundle, _ := os.ReadFile(m.bundle)
	return bytes.Contains(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func TestTrustInstallAndUninstall(t *testing.T) {
	m := newMachine(t)
	ours, other := testpki.New(t).Root, testpki.New(t).Root
	// A root someone else trusts: uninstall --all must leave it.
	if err := nssAdd(ChromiumNSS(m.home), "someone else's root", writePEM(t, other)); err != nil {
		t.Fatal(err)
	}
	in := m.installer()
	if got := len(in.NSSDatabases); got != 2 {
		t.Fatalf("found %d NSS databases, want Chromium's and the Firefox profile's", got)
	}
	if err := in.Install(ours); err != nil {
		t.Fatal(err)
	}
	for _, db := range in.NSSDatabases {
		out, err := runTool("certutil", "-L", "-d", "sql:"+db, "-n", Name(ours))
		if err != nil || !strings.Contains(string(out), "Valid CA") || !strings.Contains(string(out), "Trusted CA") {
			t.Fatalf("%s: %v\n%s", db, err, out)
		}
	}
	if !m.bundleHas(t, ours) {
		t.Fatal("the system bundle does not contain the root after install")
	}
	if err := in.Install(ours); err != nil {
		t.Fatalf("installing twice: %v", err)
	}

	n, err := in.Uninstall("")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // two NSS databases and one anchor file
		t.Fatalf("removed %d entries, want 3", n)
	}
	if m.bundleHas(t, ours) || !m.bundleHas(t, m.distro) {
		t.Fatal("after uninstall the system bundle must hold the distribution's root and not ours")
	}
	names, err := nssList(ChromiumNSS(m.home))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"someone else's root"}) {
		t.Fatalf("Chromium's database after uninstall --all: %q, want only the other root", names)
	}
}

func TestTrustUninstallOneRoot(t *testing.T) {
	m := newMachine(t)
	a, b := testpki.New(t).Root, testpki.New(t).Root
	in := m.installer()
	for _, r := range []*x509.Certificate{a, b} {
		if err := in.Install(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := in.Uninstall(Name(a)); err != nil {
		t.Fatal(err)
	}
	if m.bundleHas(t, a) || !m.bundleHas(t, b) {
		t.Fatal("uninstalling one root must remove exactly that one")
	}
	names, _ := nssList(m.firefox)
	if !slices.Equal(names, []string{Name(b)}) {
		t.Fatalf("Firefox profile after removing a: %q", names)
	}
}

// A trust anchor is only ever a valid self-signed CA: anything else is
// refused and changes nothing.
func TestTrustInstallRefusesNonRoots(t *testing.T) {
	m := newMachine(t)
	pki := testpki.New(t)
	leaf, _ := pki.Leaf(t, testpki.LeafOptions{CommonName: "a device"})
	cases := []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want string
	}{
		{"leaf", leaf, time.Now(), "not a CA"},
		{"intermediate", pki.Intermediate, time.Now(), "not self-signed"},
		{"expired root", pki.Root, time.Now().Add(48 * time.Hour), "not valid now"},
		{"root not yet valid", pki.Root, time.Now().Add(-48 * time.Hour), "not valid now"},
	}
	before := m.state(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := m.installer()
			in.Now = func() time.Time { return c.now }
			err := in.Install(c.cert)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if after := m.state(t); after != before {
				t.Fatalf("a refused install changed the machine:\n%s\nbefore:\n%s", after, before)
			}
		})
	}
}

// When the system store cannot be updated, the NSS entries already added
// are taken out again: all or nothing.
func TestTrustInstallRollsBack(t *testing.T) {
	m := newMachine(t)
	before := m.state(t)
	in := m.installer()
	in.System.Update = []string{"false"}
	if err := in.Install(testpki.New(t).Root); err == nil {
		t.Fatal("install succeeded with a failing system update")
	}
	if after := m.state(t); after != before {
		t.Fatalf("a failed install left changes:\n%s\nbefore:\n%s", after, before)
	}
}

// A home without any browser database gets Chromium's, created.
func TestTrustInstallCreatesChromiumDatabase(t *testing.T) {
	needTools(t)
	home := t.TempDir()
	root := testpki.New(t).Root
	in := &Installer{CreateNSS: ChromiumNSS(home)}
	if err := in.Install(root); err != nil {
		t.Fatal(err)
	}
	if got := NSSDatabasesIn(home); !slices.Equal(got, []string{ChromiumNSS(home)}) {
		t.Fatalf("databases after install: %q", got)
	}
	names, _ := nssList(ChromiumNSS(home))
	if !slices.Equal(names, []string{Name(root)}) {
		t.Fatalf("names: %q", names)
	}
}

func TestParseCertutilList(t *testing.T) {
	out := `
Certificate Nickname                                         Trust Attributes
                                                             SSL,S/MIME,JAR/XPI

devicegate root 0123456789abcdef                             C,,  
someone else's root                                          CT,C,C
my device                                                    u,u,u
`
	got := parseCertutilList([]byte(out))
	want := []string{"devicegate root 0123456789abcdef", "someone else's root", "my device"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func FuzzParseCertutilList(f *testing.F) {
	f.Add([]byte("Certificate Nickname   Trust Attributes\n                 SSL,S/MIME,JAR/XPI\n\nx   C,,\n"))
	f.Add([]byte("a,b,c\n ,,\n\t,,,\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		for _, n := range parseCertutilList(out) {
			if n == "" || n != strings.TrimSpace(n) || strings.Contains(n, "\n") {
				t.Fatalf("bad nickname %q", n)
			}
		}
	})
}

func writePEM(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
