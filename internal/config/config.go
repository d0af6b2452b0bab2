package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/devicegate/devicegate/internal/identity"
)

// Config is devicegate.yaml (all-in-one) and ca.yaml (a CA node uses the
// same type; sections it does not need are simply left out).
type Config struct {
	DataDir           string   `yaml:"data_dir"`
	AllowPublicListen bool     `yaml:"allow_public_listen"`
	Database          Database `yaml:"database"`
	CA                CA       `yaml:"ca"`
	Proxy             Proxy    `yaml:"proxy"`
	Portal            Portal   `yaml:"portal"`
	Demo              Demo     `yaml:"demo"`
	TLS               TLS      `yaml:"tls"`
	PermissionsFile   string   `yaml:"permissions_file"`
	Log               Log      `yaml:"log"`
}

// TLS is the server certificate of the HTTPS listeners (CA API, proxy,
// portal). Default: certificates from the internal server CA for Hosts,
// obtained and renewed by certmagic. With CertFile and KeyFile: that
// certificate (e.g. from the company's own CA); restart to load a new one.
// With ACME: certificates for Hosts from an ACME CA (public, like Let's
// Encrypt, or private), obtained and renewed by certmagic.
type TLS struct {
	CertFile string   `yaml:"cert_file"` // PEM chain, leaf first
	KeyFile  string   `yaml:"key_file"`
	Hosts    []string `yaml:"hosts"` // names to certify (internal server CA or ACME)
	ACME     ACME     `yaml:"acme"`
}

// ACME gets the server certificate from an ACME CA with the TLS-ALPN-01
// challenge, answered on the HTTPS listeners themselves: the CA must reach
// them on TLSALPNPort (443, or a port forwarded to the listener).
type ACME struct {
	DirectoryURL string `yaml:"directory_url"` // e.g. https://acme-v02.api.letsencrypt.org/directory
	Email        string `yaml:"email"`         // account contact for expiry notices
	AgreeTOS     bool   `yaml:"agree_tos"`     // the operator accepts the CA's terms (required)
	CARootFile   string `yaml:"ca_root_file"`  // PEM roots of a private ACME CA's own HTTPS
	TLSALPNPort  int    `yaml:"tls_alpn_port"` // default 443
}

// Database selects the store backend.
type Database struct {
	Driver      string `yaml:"driver"`        // sqlite | postgres
	Path        string `yaml:"path"`          // sqlite file
	DSN         string `yaml:"dsn"`           // postgres; ${VAR} is expanded
	SealKeyFile string `yaml:"seal_key_file"` // AES-256 key sealing TOTP secrets
}

// CA configures the authority and its HTTPS API.
type CA struct {
	Dir         string   `yaml:"dir"`
	TrustDomain string   `yaml:"trust_domain"`
	Validity    Duration `yaml:"validity"`
	Listen      string   `yaml:"listen"`
	PublicURL   string   `yaml:"public_url"`
	CRLFile     string   `yaml:"crl_file"`
	CRLValidity Duration `yaml:"crl_validity"`
	TicketTTL   Duration `yaml:"ticket_ttl"`
	AllowRSA    *bool    `yaml:"allow_rsa"`
	ACME        CAACME   `yaml:"acme"`
}

// CAACME turns on the CA's internal ACME service (RFC 8555, tls-alpn-01
// and http-01) at <public_url>/acme/devicegate/directory: proxies and
// portals on other machines get their server certificates from the
// internal server CA with tls.acme, and nothing else does. Off unless
// Hosts lists what it may certify.
type CAACME struct {
	Hosts []string `yaml:"hosts"` // DNS names, "*.domain", IPs or CIDR ranges
}

// RSAAllowed reports whether RSA >= 2048 keys are accepted (default yes).
func (c CA) RSAAllowed() bool { return c.AllowRSA == nil || *c.AllowRSA }

// Proxy is the mTLS gateway.
type Proxy struct {
	Listen       string     `yaml:"listen"`
	AdminListen  string     `yaml:"admin_listen"`
	MaxStaleness Duration   `yaml:"max_staleness"` // no policy sync this long: high-risk paths answer 503
	SyncInterval Duration   `yaml:"sync_interval"` // how often the store's change seq is polled
	EnrollURL    string     `yaml:"enroll_url"`    // linked from the refusal page
	Feed         Feed       `yaml:"feed"`          // policy from the CA instead of the database
	Pprof        bool       `yaml:"pprof"`         // serve /debug/pprof/ on the admin listener (profiling)
	SnapshotFile string     `yaml:"snapshot_file"` // the policy snapshot, saved on change, loaded at start
	Upstreams    []Upstream `yaml:"upstreams"`
}

// Upstream is one back-office app behind the proxy.
type Upstream struct {
	Name            string           `yaml:"name"`
	URL             string           `yaml:"url"`
	Hosts           []string         `yaml:"hosts"` // Host header values routed here
	CaseInsensitive bool             `yaml:"case_insensitive"`
	Timeout         Duration         `yaml:"timeout"`
	Binding         Binding          `yaml:"binding"`
	Permissions     []PathPermission `yaml:"permissions"`
	// LoginPath with RequireCertForLogin: the app's login page itself needs
	// a valid device certificate (seed 000: sub-accounts without a
	// certificate cannot log in).
	LoginPath           string `yaml:"login_path"`
	RequireCertForLogin bool   `yaml:"require_cert_for_login"`
	// Upgrades lists the protocols a client may switch to (Upgrade header)
	// on this app; nil means [websocket], [] none. h2c is never allowed: it
	// would carry every later request past the proxy's decision.
	Upgrades []string `yaml:"upgrades"`
}

// Binding ties the app's login session to the certificate's sub-account.
type Binding struct {
	Mode          string `yaml:"mode"`           // whoami | header | jwt
	HMACKeyFile   string `yaml:"hmac_key_file"`  // header: key signing the identity headers
	JWTKeyFile    string `yaml:"jwt_key_file"`   // jwt: the app's public key (PEM) ...
	JWKSURL       string `yaml:"jwks_url"`       // jwt: ... or its JWKS (https, or http on loopback)
	JWTCookie     string `yaml:"jwt_cookie"`     // jwt: cookie holding the token (else Authorization: Bearer)
	JWTClaim      string `yaml:"jwt_claim"`      // jwt: claim with "store:name" (default sub)
	JWTIssuer     string `yaml:"jwt_issuer"`     // jwt: required issuer, if set
	JWTAudience   string `yaml:"jwt_audience"`   // jwt: required audience, if set
	WhoamiURL     string `yaml:"whoami_url"`     // called with the request's cookies
	SessionCookie string `yaml:"session_cookie"` // the app's session cookie (cache key)
	UserField     string `yaml:"user_field"`     // JSON field with "store:name"
}

// PathPermission maps a path prefix (whole segments) to a permission point.
type PathPermission struct {
	Path  string `yaml:"path"`
	Point string `yaml:"point"`
}

// Feed makes a proxy without database access: its policy comes from the
// CA's feed and its decisions go to the CA, over mTLS with a proxy-role
// certificate.
type Feed struct {
	CAURL          string `yaml:"ca_url"`
	CredentialsDir string `yaml:"credentials_dir"` // from `devicegate ca proxy-cert --out DIR`
}

// Portal is the browser enrollment portal.
type Portal struct {
	Listen string `yaml:"listen"`
	// ProxyURL is the mTLS gateway's address as staff browsers reach it:
	// "check installation" asks its whoami endpoint.
	ProxyURL string `yaml:"proxy_url"`
}

// Demo configures what only `devicegate demo` runs.
type Demo struct {
	BackofficeListen string `yaml:"backoffice_listen"` // the demo back-office app (plain HTTP, loopback)
}

// Log configures slog.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Load reads, parses, defaults and validates a config file. Relative paths
// in it are relative to the file's directory.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse parses config YAML; relative paths are resolved against baseDir.
func Parse(data []byte, baseDir string) (*Config, error) {
	var c Config
	var p problems
	if err := decodeStrict(data, &c); err != nil {
		// Unknown keys and wrong types are reported together with every
		// validation problem of the rest of the file.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		p = append(p, err)
		c = Config{}
		_ = yaml.Unmarshal(data, &c)
	}
	c.setDefaults(baseDir, &p)
	c.validate(&p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

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
	def(&c.Demo.BackofficeListen, "127.0.0.1:8081")
	c.PermissionsFile = abs(c.PermissionsFile)
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
}

func (a ACME) validate(p *problems, t TLS) {
	if a.DirectoryURL == "" {
		return
	}
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add("tls.acme.directory_url", "must be an https:// URL")
	}
	if !a.AgreeTOS {
		p.add("tls.acme.agree_tos", "must be true: using an ACME CA means accepting its terms of service")
	}
	if t.CertFile != "" {
		p.add("tls.acme", "use either tls.cert_file/key_file or tls.acme, not both")
	}
	if len(t.Hosts) == 0 {
		p.add("tls.hosts", "list the host names the ACME CA should certify")
	}
	if a.TLSALPNPort < 1 || a.TLSALPNPort > 65535 {
		p.add("tls.acme.tls_alpn_port", "must be a port number")
	}
}

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

func (c *Config) validate(p *problems) {
	switch c.Database.Driver {
	case "sqlite":
	case "postgres":
		if c.Database.DSN == "" {
			p.add("database.dsn", "required when driver is postgres")
		}
	default:
		p.add("database.driver", "must be sqlite or postgres, not %q", c.Database.Driver)
	}
	if err := identity.ValidateTrustDomain(c.CA.TrustDomain); err != nil {
		p.add("ca.trust_domain", "%v", err)
	}
	checkRange(p, "ca.validity", c.CA.Validity, time.Hour, 825*24*time.Hour)
	checkRange(p, "ca.crl_validity", c.CA.CRLValidity, time.Hour, 90*24*time.Hour)
	checkRange(p, "ca.ticket_ttl", c.CA.TicketTTL, time.Minute, 24*time.Hour)
	checkRange(p, "proxy.max_staleness", c.Proxy.MaxStaleness, time.Second, time.Hour)
	checkRange(p, "proxy.sync_interval", c.Proxy.SyncInterval, 10*time.Millisecond, time.Minute)
	for i, u := range c.Proxy.Upstreams {
		u.validate(p, fmt.Sprintf("proxy.upstreams[%d]", i))
	}
	for path, raw := range map[string]string{"ca.public_url": c.CA.PublicURL, "portal.proxy_url": c.Portal.ProxyURL, "proxy.enroll_url": c.Proxy.EnrollURL} {
		if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
			p.add(path, "must be an https:// URL")
		}
	}
	for path, addr := range map[string]string{
		"ca.listen": c.CA.Listen, "proxy.listen": c.Proxy.Listen,
		"proxy.admin_listen": c.Proxy.AdminListen, "portal.listen": c.Portal.Listen,
		"demo.backoffice_listen": c.Demo.BackofficeListen,
	} {
		c.checkListen(p, path, addr)
	}
	if c.Proxy.Feed.CAURL != "" {
		if u, err := url.Parse(c.Proxy.Feed.CAURL); err != nil || u.Scheme != "https" || u.Host == "" {
			p.add("proxy.feed.ca_url", "must be an https:// URL")
		}
		if c.Proxy.Feed.CredentialsDir == "" {
			p.add("proxy.feed.credentials_dir", "required with proxy.feed.ca_url")
		}
		if c.TLS.CertFile == "" && c.TLS.ACME.DirectoryURL == "" {
			p.add("tls.cert_file", "a proxy fed by the CA has no server CA keys: set tls.cert_file and tls.key_file, or tls.acme")
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.add("tls", "cert_file and key_file go together")
	}
	c.TLS.ACME.validate(p, c.TLS)
	for i, h := range c.CA.ACME.Hosts {
		if err := ValidateACMEHost(h); err != nil {
			p.add(fmt.Sprintf("ca.acme.hosts[%d]", i), "%v", err)
		}
	}
	for i, h := range c.TLS.Hosts {
		if h == "" || strings.ContainsAny(h, " /:*") && net.ParseIP(h) == nil {
			p.add(fmt.Sprintf("tls.hosts[%d]", i), "%q is not a host name or IP address", h)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p.add("log.format", "must be text or json")
	}
}

func checkRange(p *problems, path string, d Duration, lo, hi time.Duration) {
	if v := d.Duration(); v < lo || v > hi {
		p.add(path, "must be between %v and %v", Duration(lo), Duration(hi))
	}
}

// checkListen refuses malformed addresses and, unless allowed, anything
// that is not loopback (house rule: public listeners are an opt-in).
func (c *Config) checkListen(p *problems, path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		p.add(path, "%q is not host:port", addr)
		return
	}
	if c.AllowPublicListen {
		return
	}
	if host == "localhost" {
		return
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		p.add(path, "%q is not a loopback address; set allow_public_listen: true to listen publicly", addr)
	}
}

// checkJWKSURL wants https: keys fetched over plain HTTP could be swapped
// on the way, except from the same host.
func checkJWKSURL(p *problems, path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		p.add(path, "must be an https:// URL")
		return
	}
	if u.Scheme == "https" {
		return
	}
	ip := net.ParseIP(u.Hostname())
	if u.Scheme != "http" || (u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback())) {
		p.add(path, "must be an https:// URL (http:// only on loopback)")
	}
}

func checkHTTPURL(p *problems, path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		p.add(path, "must be an http:// or https:// URL")
	}
}

func (u Upstream) validate(p *problems, path string) {
	if u.Name == "" {
		p.add(path+".name", "required")
	}
	checkHTTPURL(p, path+".url", u.URL)
	if len(u.Hosts) == 0 {
		p.add(path+".hosts", "at least one host is required")
	}
	checkRange(p, path+".timeout", u.Timeout, time.Second, 10*time.Minute)
	switch u.Binding.Mode {
	case "header":
		if u.Binding.HMACKeyFile == "" {
			p.add(path+".binding.hmac_key_file", "required for header binding")
		}
	case "jwt":
		if (u.Binding.JWTKeyFile == "") == (u.Binding.JWKSURL == "") {
			p.add(path+".binding", "jwt binding needs exactly one of jwt_key_file and jwks_url")
		}
		if u.Binding.JWKSURL != "" {
			checkJWKSURL(p, path+".binding.jwks_url", u.Binding.JWKSURL)
		}
	case "whoami":
		checkHTTPURL(p, path+".binding.whoami_url", u.Binding.WhoamiURL)
		if u.Binding.SessionCookie == "" {
			p.add(path+".binding.session_cookie", "required for whoami binding")
		}
	default:
		p.add(path+".binding.mode", "%q is not supported (supported: whoami, header, jwt)", u.Binding.Mode)
	}
	for j, up := range u.Upgrades {
		switch {
		case strings.EqualFold(up, "h2c"):
			p.add(fmt.Sprintf("%s.upgrades[%d]", path, j), "h2c cannot be allowed: an HTTP/2 tunnel would carry requests past the proxy's decision")
		case !isToken(up):
			p.add(fmt.Sprintf("%s.upgrades[%d]", path, j), "%q is not a protocol name (an HTTP token, e.g. websocket)", up)
		}
	}
	if u.RequireCertForLogin && !strings.HasPrefix(u.LoginPath, "/") {
		p.add(path+".login_path", "required (a path) when require_cert_for_login is on")
	}
	for j, pp := range u.Permissions {
		pth := fmt.Sprintf("%s.permissions[%d]", path, j)
		if !strings.HasPrefix(pp.Path, "/") || strings.Contains(pp.Path, "//") || strings.Contains(pp.Path, "/.") ||
			strings.ContainsAny(pp.Path, "%;\\?#") {
			p.add(pth+".path", "%q must be a plain, canonical path prefix", pp.Path)
		}
		if pp.Point == "" {
			p.add(pth+".point", "required")
		}
	}
}

// DefaultUpgrades is what an upstream without `upgrades` allows clients
// to switch to.
func DefaultUpgrades() []string { return []string{"websocket"} }

// isToken: an Upgrade protocol as RFC 9110 writes it (token, optionally
// "/" version token), nothing else.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~/", c) >= 0:
		default:
			return false
		}
	}
	return true
}
