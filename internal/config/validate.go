package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/secrets"
)

// validate checks the defaulted config section by section, in the order
// of the Config fields (Parse then orders the problems as the file has
// them; within one position this order stays).
func (c *Config) validate(p *problems) {
	c.Database.validate(p)
	c.CA.validate(p, c.AllowPublicListen)
	c.Proxy.validate(p, c.AllowPublicListen, c.TLS)
	checkListen(p, "portal.listen", c.Portal.Listen, c.AllowPublicListen)
	checkHTTPSURL(p, "portal.proxy_url", c.Portal.ProxyURL)
	c.Portal.validateOwner(p, c.AllowPublicListen)
	if f := c.Portal.VerifyCallbackKeyFile; f != "" {
		// Read to check it (mode, length); the key itself goes nowhere.
		if _, err := secrets.LoadKey(f); err != nil {
			p.add("portal.verify_callback_key_file", "%v", err)
		}
	}
	checkListen(p, "demo.backoffice_listen", c.Demo.BackofficeListen, c.AllowPublicListen)
	c.TLS.validate(p)
	c.Log.validate(p)
}

func (d Database) validate(p *problems) {
	switch d.Driver {
	case "sqlite":
	case "postgres":
		if d.DSN == "" {
			p.add("database.dsn", "required when driver is postgres")
		}
	default:
		p.add("database.driver", "must be sqlite or postgres, not %q", d.Driver)
	}
}

func (c CA) validate(p *problems, public bool) {
	if err := identity.ValidateTrustDomain(c.TrustDomain); err != nil {
		p.add("ca.trust_domain", "%v", err)
	}
	checkRange(p, "ca.validity", c.Validity, time.Hour, 825*24*time.Hour)
	checkListen(p, "ca.listen", c.Listen, public)
	if c.AdminListen != "" {
		checkListen(p, "ca.admin_listen", c.AdminListen, public)
	}
	checkHTTPSURL(p, "ca.public_url", c.PublicURL)
	checkRange(p, "ca.crl_validity", c.CRLValidity, time.Hour, 90*24*time.Hour)
	checkRange(p, "ca.ticket_ttl", c.TicketTTL, time.Minute, 24*time.Hour)
	for i, h := range c.ACME.Hosts {
		if err := ValidateACMEHost(h); err != nil {
			p.add(fmt.Sprintf("ca.acme.hosts[%d]", i), "%v", err)
		}
	}
}

func (x Proxy) validate(p *problems, public bool, t TLS) {
	if x.Name != "" {
		if err := identity.ValidateProxyName(x.Name); err != nil {
			p.add("proxy.name", "%v", err)
		}
	}
	checkListen(p, "proxy.listen", x.Listen, public)
	checkListen(p, "proxy.admin_listen", x.AdminListen, public)
	checkRange(p, "proxy.max_staleness", x.MaxStaleness, time.Second, time.Hour)
	checkRange(p, "proxy.sync_interval", x.SyncInterval, 10*time.Millisecond, time.Minute)
	checkHTTPSURL(p, "proxy.enroll_url", x.EnrollURL)
	if x.Feed.CAURL != "" {
		checkHTTPSURL(p, "proxy.feed.ca_url", x.Feed.CAURL)
		if x.Feed.CredentialsDir == "" {
			p.add("proxy.feed.credentials_dir", "required with proxy.feed.ca_url")
		}
		if t.CertFile == "" && t.ACME.DirectoryURL == "" {
			p.add("tls.cert_file", "a proxy fed by the CA has no server CA keys: set tls.cert_file and tls.key_file, or tls.acme")
		}
	}
	for i, u := range x.Upstreams {
		u.validate(p, fmt.Sprintf("proxy.upstreams[%d]", i))
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
	if u.RequireCertForLogin && !strings.HasPrefix(u.LoginPath, "/") {
		p.add(path+".login_path", "required (a path) when require_cert_for_login is on")
	}
	for j, up := range u.Upgrades {
		switch {
		case strings.EqualFold(up, "h2c"):
			p.add(fmt.Sprintf("%s.upgrades[%d]", path, j), "h2c cannot be allowed: an HTTP/2 tunnel would carry requests past the proxy's decision")
		case !isToken(up):
			p.add(fmt.Sprintf("%s.upgrades[%d]", path, j), "%q is not a protocol name (an HTTP token, e.g. websocket)", up)
		}
	}
}

func (t TLS) validate(p *problems) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add("tls", "cert_file and key_file go together")
	}
	for i, h := range t.Hosts {
		if h == "" || strings.ContainsAny(h, " /:*") && net.ParseIP(h) == nil {
			p.add(fmt.Sprintf("tls.hosts[%d]", i), "%q is not a host name or IP address", h)
		}
	}
	t.ACME.validate(p, t)
}

func (a ACME) validate(p *problems, t TLS) {
	if a.DirectoryURL == "" {
		return
	}
	if t.CertFile != "" {
		p.add("tls.acme", "use either tls.cert_file/key_file or tls.acme, not both")
	}
	if len(t.Hosts) == 0 {
		p.add("tls.hosts", "list the host names the ACME CA should certify")
	}
	checkHTTPSURL(p, "tls.acme.directory_url", a.DirectoryURL)
	if !a.AgreeTOS {
		p.add("tls.acme.agree_tos", "must be true: using an ACME CA means accepting its terms of service")
	}
	if a.TLSALPNPort < 1 || a.TLSALPNPort > 65535 {
		p.add("tls.acme.tls_alpn_port", "must be a port number")
	}
}

func (l Log) validate(p *problems) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error")
	}
	if l.Format != "text" && l.Format != "json" {
		p.add("log.format", "must be text or json")
	}
}

func checkRange(p *problems, path string, d Duration, lo, hi time.Duration) {
	if v := d.Duration(); v < lo || v > hi {
		p.add(path, "must be between %v and %v", Duration(lo), Duration(hi))
	}
}

// checkListen refuses malformed addresses and, unless public is allowed,
// anything that is not loopback (house rule: public listeners are an
// opt-in).
func checkListen(p *problems, path, addr string, public bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		p.add(path, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		p.add(path, "%q: the port must be a number from 0 to 65535", addr)
		return
	}
	if public || host == "localhost" {
		return
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		p.add(path, "%q is not a loopback address; set allow_public_listen: true to listen publicly", addr)
	}
}

func checkHTTPSURL(p *problems, path, raw string) {
	if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add(path, "must be an https:// URL")
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

// validateOwner checks the owner console's listener and its address.
func (x Portal) validateOwner(p *problems, public bool) {
	if x.OwnerListen != "" {
		checkListen(p, "portal.owner_listen", x.OwnerListen, public)
		if x.OwnerListen == x.Listen && !strings.HasSuffix(x.Listen, ":0") { // ":0": two kernel-chosen ports
			p.add("portal.owner_listen", "must differ from portal.listen (that one never asks for a certificate)")
		}
	}
	if x.OwnerURL != "" {
		checkHTTPSURL(p, "portal.owner_url", x.OwnerURL)
		if x.OwnerListen == "" {
			p.add("portal.owner_url", "set only with portal.owner_listen")
		}
	}
}
