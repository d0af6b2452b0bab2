package config

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
	AdminListen string   `yaml:"admin_listen"` // metrics at /metrics (plain HTTP); empty: off
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
	// Name is how this proxy reports the policy seq it has applied (for
	// `revoke --wait`); default <hostname>-<listen port>. A proxy fed by
	// the CA reports under its certificate's name instead.
	Name         string     `yaml:"name"`
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
	// OwnerListen (empty: none) is the owner console's own HTTPS listener:
	// the same portal, but the TLS handshake asks for a device certificate
	// (the owner's own, docs/lifecycle.md). Listen never asks, so staff
	// browsers holding a certificate see no certificate picker there.
	OwnerListen string `yaml:"owner_listen"`
	// OwnerURL is OwnerListen's address as the owner's browser reaches it
	// (default https://localhost:PORT).
	OwnerURL string `yaml:"owner_url"`
	// VerifyCallbackKeyFile (empty: callback off) holds the key, 32 bytes
	// hex, mode 0600, that signs an identity provider's verification
	// results (POST /verify/callback, docs/verification.md).
	VerifyCallbackKeyFile string `yaml:"verify_callback_key_file"`
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
