package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// setDefaults fills what the file leaves out and makes its paths absolute
// (relative to baseDir). ${VAR} in database.dsn is expanded here; an unset
// variable is a problem, not "".
func (c *Config) setDefaults(baseDir string, p *problems) {
	abs := func(path string) string {
		if path == "" || filepath.IsAbs(path) {
			return path
		}
		return filepath.Join(baseDir, path)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.DataDir, "./devicegate-data")
	c.DataDir = abs(c.DataDir)
	def(&c.Database.Driver, "sqlite")
	def(&c.Database.Path, filepath.Join(c.DataDir, "devicegate.db"))
	def(&c.Database.SealKeyFile, filepath.Join(c.DataDir, "seal.key"))
	c.Database.Path, c.Database.SealKeyFile = abs(c.Database.Path), abs(c.Database.SealKeyFile)
	if strings.Contains(c.Database.DSN, "${") {
		if dsn, err := expandEnv(c.Database.DSN); err != nil {
			p.add("database.dsn", "%v", err)
		} else {
			c.Database.DSN = dsn
		}
	}
	def(&c.CA.Dir, filepath.Join(c.DataDir, "ca"))
	c.CA.Dir = abs(c.CA.Dir)
	def(&c.CA.TrustDomain, "devicegate.local")
	defDur(&c.CA.Validity, 365*24*time.Hour)
	def(&c.CA.Listen, "127.0.0.1:8443")
	def(&c.CA.PublicURL, "https://localhost:8443")
	def(&c.CA.CRLFile, filepath.Join(c.CA.Dir, "crl.pem"))
	c.CA.CRLFile = abs(c.CA.CRLFile)
	defDur(&c.CA.CRLValidity, 7*24*time.Hour)
	defDur(&c.CA.TicketTTL, 30*time.Minute)
	def(&c.Proxy.Listen, "127.0.0.1:9443")
	def(&c.Proxy.AdminListen, "127.0.0.1:9090")
	defDur(&c.Proxy.MaxStaleness, 30*time.Second)
	defDur(&c.Proxy.SyncInterval, 50*time.Millisecond)
	def(&c.Proxy.EnrollURL, "https://localhost:8444/")
	def(&c.Proxy.SnapshotFile, filepath.Join(c.DataDir, "proxy-snapshot.json"))
	c.Proxy.Feed.CredentialsDir = abs(c.Proxy.Feed.CredentialsDir)
	c.Proxy.SnapshotFile = abs(c.Proxy.SnapshotFile)
	for i := range c.Proxy.Upstreams {
		u := &c.Proxy.Upstreams[i]
		defDur(&u.Timeout, 30*time.Second)
		def(&u.Binding.Mode, "whoami")
		def(&u.Binding.UserField, "user")
		def(&u.Binding.JWTClaim, "sub")
		if u.Upgrades == nil {
			u.Upgrades = DefaultUpgrades()
		}
		u.Binding.HMACKeyFile, u.Binding.JWTKeyFile = abs(u.Binding.HMACKeyFile), abs(u.Binding.JWTKeyFile)
	}
	if len(c.TLS.Hosts) == 0 && c.TLS.ACME.DirectoryURL == "" {
		c.TLS.Hosts = []string{"localhost", "127.0.0.1"}
	}
	c.TLS.CertFile, c.TLS.KeyFile = abs(c.TLS.CertFile), abs(c.TLS.KeyFile)
	c.TLS.ACME.CARootFile = abs(c.TLS.ACME.CARootFile)
	if c.TLS.ACME.TLSALPNPort == 0 {
		c.TLS.ACME.TLSALPNPort = 443
	}
	def(&c.Portal.Listen, "127.0.0.1:8444")
	def(&c.Portal.ProxyURL, "https://localhost:9443/")
	c.Portal.VerifyCallbackKeyFile = abs(c.Portal.VerifyCallbackKeyFile)
	def(&c.Demo.BackofficeListen, "127.0.0.1:8081")
	c.PermissionsFile = abs(c.PermissionsFile)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
}

// DefaultUpgrades is what an upstream without `upgrades` allows clients
// to switch to.
func DefaultUpgrades() []string { return []string{"websocket"} }

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR}; an unset variable is an error, not "".
func expandEnv(s string) (string, error) {
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}
