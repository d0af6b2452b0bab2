package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicegate/devicegate/configs"
)

// TestGoldenConfigs loads every file in configs/: a new example file that
// does not load fails here.
func TestGoldenConfigs(t *testing.T) {
	t.Setenv("DEVICEGATE_PG_DSN", "postgres://u@127.0.0.1/db")
	names, err := fs.Glob(configs.Files, "*.yaml")
	if err != nil || len(names) < 4 {
		t.Fatalf("embedded configs: %v %v", names, err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if err := CheckFile(filepath.Join("..", "..", "configs", name)); err != nil {
				t.Fatal(err)
			}
		})
	}
	c, err := Load("../../configs/devicegate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../../devicegate-data")
	if c.DataDir != abs || c.Database.Driver != "sqlite" || c.Database.Path != filepath.Join(abs, "devicegate.db") ||
		c.CA.Validity.Duration() != 365*24*time.Hour || c.CA.TicketTTL.Duration() != 30*time.Minute ||
		c.CA.Listen != "127.0.0.1:8443" || !c.CA.RSAAllowed() || c.CA.CRLFile != filepath.Join(abs, "ca", "crl.pem") {
		t.Fatalf("devicegate.yaml loaded as %+v", c)
	}
	pg, err := Load("../../configs/ca.yaml")
	if err != nil || pg.Database.DSN != "postgres://u@127.0.0.1/db" || pg.Log.Format != "json" {
		t.Fatalf("ca.yaml: %+v %v", pg, err)
	}
	cat, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"orders.sold", "shipping", "members", "orders.export", "orders.pages", "orders.detail.domestic", "orders.detail.international"} {
		if !cat.IsHighRisk(k) {
			t.Errorf("%s is not high risk", k)
		}
	}
	for _, k := range []string{"products", "chat", "marketing"} {
		if p, ok := cat.Point(k); !ok || p.Risk != "normal" {
			t.Errorf("%s: %+v", k, p)
		}
	}
	if got := cat.Permissions("finance", []string{"members", "reports"}); strings.Join(got, ",") != "members,orders.export,refunds,reports" {
		t.Errorf("finance + grants = %v", got)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("data_dir: /srv/dg\n"), "/etc")
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Path != "/srv/dg/devicegate.db" || c.CA.Dir != "/srv/dg/ca" || c.Database.SealKeyFile != "/srv/dg/seal.key" || c.CA.TrustDomain != "devicegate.local" {
		t.Fatalf("defaults: %+v", c)
	}
	rel, err := Parse([]byte("data_dir: data\n"), "/etc/dg")
	if err != nil || rel.DataDir != "/etc/dg/data" {
		t.Fatalf("relative data_dir: %v %v", rel.DataDir, err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "data_dir: x\nbogus: 1\n", "bogus"},
		{"unknown nested key", "ca:\n  validty: 1d\n", "validty"},
		{"duplicate key", "data_dir: a\ndata_dir: b\n", "already defined"},
		{"wrong type", "ca:\n  allow_rsa: maybe\n", "maybe"},
		{"bad duration", "ca:\n  validity: forever\n", "bad duration"},
		{"number as duration", "ca:\n  validity: 30\n", "want a duration"},
		{"validity too long", "ca:\n  validity: 1000d\n", "ca.validity"},
		{"ticket ttl too long", "ca:\n  ticket_ttl: 2d\n", "ca.ticket_ttl"},
		{"public listen", "ca:\n  listen: 0.0.0.0:8443\n", "allow_public_listen"},
		{"bad listen", "proxy:\n  listen: nonsense\n", "proxy.listen"},
		{"postgres without dsn", "database:\n  driver: postgres\n", "database.dsn"},
		{"unset env", "database:\n  driver: postgres\n  dsn: ${DEVICEGATE_TEST_UNSET_VAR}\n", "DEVICEGATE_TEST_UNSET_VAR"},
		{"bad driver", "database:\n  driver: mysql\n", "database.driver"},
		{"bad trust domain", "ca:\n  trust_domain: Bad/Domain\n", "ca.trust_domain"},
		{"http public url", "ca:\n  public_url: http://x\n", "ca.public_url"},
		{"jwks over plain http", "proxy:\n  upstreams:\n    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], permissions: [{path: /, point: orders.sold}], binding: {mode: jwt, jwks_url: \"http://idp.example/jwks\"}}\n", "https"},
		{"jwt with two key sources", "proxy:\n  upstreams:\n    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], permissions: [{path: /, point: orders.sold}], binding: {mode: jwt, jwks_url: \"https://idp.example/jwks\", jwt_key_file: k.pem}}\n", "exactly one"},
		{"jwt without a key", "proxy:\n  upstreams:\n    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], permissions: [{path: /, point: orders.sold}], binding: {mode: jwt}}\n", "exactly one"},
		{"h2c upgrade allowed", "proxy:\n  upstreams:\n    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], permissions: [{path: /, point: orders.sold}], upgrades: [websocket, H2C], binding: {mode: header, hmac_key_file: k}}\n", "upgrades[1]"},
		{"upgrade that is no protocol name", "proxy:\n  upstreams:\n    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], permissions: [{path: /, point: orders.sold}], upgrades: [\"web socket\"], binding: {mode: header, hmac_key_file: k}}\n", "upgrades[0]"},
		{"cert without key", "tls:\n  cert_file: a.crt\n", "cert_file and key_file"},
		{"bad tls host", "tls:\n  hosts: [\"a b\"]\n", "tls.hosts[0]"},
		{"acme without terms", "tls:\n  hosts: [gate.example.com]\n  acme: {directory_url: \"https://acme.example/dir\"}\n", "agree_tos"},
		{"acme over http", "tls:\n  hosts: [gate.example.com]\n  acme: {directory_url: \"http://acme.example/dir\", agree_tos: true}\n", "tls.acme.directory_url"},
		{"acme without hosts", "tls:\n  acme: {directory_url: \"https://acme.example/dir\", agree_tos: true}\n", "tls.hosts"},
		{"internal ACME for the whole internet", "ca:\n  acme: {hosts: [gate.example.com, 0.0.0.0/0]}\n", "ca.acme.hosts[1]"},
		{"internal ACME with a URL", "ca:\n  acme: {hosts: [\"https://gate.example.com\"]}\n", "ca.acme.hosts[0]"},
		{"acme and files", "tls:\n  cert_file: a.crt\n  key_file: a.key\n  hosts: [gate.example.com]\n  acme: {directory_url: \"https://acme.example/dir\", agree_tos: true}\n", "not both"},
		{"two documents", "data_dir: a\n---\ndata_dir: b\n", "single YAML document"},
		{"empty", "", "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "/tmp")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	_, err := Parse([]byte("ca:\n  validity: 1000d\n  ticket_ttl: 2d\n  listen: 10.0.0.1:1\n  bogus: 1\nlog:\n  level: loud\n"), "/tmp")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"ca.validity", "ca.ticket_ttl", "ca.listen", "log.level", "bogus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func TestCatalogErrors(t *testing.T) {
	base := string(configs.DefaultPermissions)
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown point in role", strings.Replace(base, "permissions: [products]", "permissions: [nope]", 1), `unknown permission point "nope"`},
		{"duplicate point", strings.Replace(base, "key: members", "key: shipping", 1), "duplicate key"},
		{"missing role", strings.Replace(base, "key: finance", "key: accounting", 1), `"finance" is required`},
		{"bad risk", strings.Replace(base, "risk: high", "risk: extreme", 1), "must be high or normal"},
		{"missing zh name", strings.Replace(base, "{zh: 发货, en: Shipping}", "{en: Shipping}", 1), "both zh and en"},
		{"bad key", strings.Replace(base, "key: shipping", "key: Ship Ping", 1), "must match"},
		{"unknown key", base + "extra: 1\n", "extra"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	cat, _ := DefaultCatalog()
	if err := cat.ValidateGrants("boss", []string{"nope"}); err == nil || !strings.Contains(err.Error(), "boss") || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("ValidateGrants: %v", err)
	}
	if err := cat.ValidateGrants("finance", []string{"members"}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFileDetectsKind(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "mine.yaml")
	os.WriteFile(bad, []byte("points:\n  - key: x\n"), 0o600)
	if err := CheckFile(bad); err == nil || !strings.Contains(err.Error(), "points[0]") {
		t.Fatalf("catalog problems not reported: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("data_dir: x\nca:\n  validity: 30d\n"))
	f.Add([]byte("database:\n  driver: postgres\n  dsn: ${X}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "/tmp")
		if err != nil {
			return
		}
		if v := c.CA.Validity.Duration(); v < time.Hour || v > 825*24*time.Hour {
			t.Fatalf("accepted validity %v", v)
		}
		if c.Database.Driver != "sqlite" && c.Database.Driver != "postgres" {
			t.Fatalf("accepted driver %q", c.Database.Driver)
		}
	})
}

func FuzzParseCatalog(f *testing.F) {
	f.Add(configs.DefaultPermissions)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalog(data)
		if err != nil {
			return
		}
		for _, r := range RequiredRoles {
			if _, ok := c.Role(r); !ok {
				t.Fatalf("accepted a catalog without %s", r)
			}
		}
	})
}

// The legitimate JWKS URLs: https anywhere, http only on loopback.
func TestJWKSURLAccepted(t *testing.T) {
	for _, u := range []string{"https://idp.example/.well-known/jwks.json", "http://127.0.0.1:8080/jwks", "http://localhost/jwks"} {
		y := "proxy:\n  upstreams:\n    - {name: app, url: \"http://127.0.0.1:1\", hosts: [localhost], permissions: [{path: /, point: orders.sold}], binding: {mode: jwt, jwks_url: \"" + u + "\"}}\n"
		if _, err := Parse([]byte(y), "/tmp"); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}
