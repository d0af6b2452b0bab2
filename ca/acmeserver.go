package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/devicegate/devicegate/internal/config"
	"github.com/devicegate/devicegate/internal/ratelimit"
	"github.com/go-chi/chi/v5"
	"github.com/smallstep/certificates/acme"
	acmeapi "github.com/smallstep/certificates/acme/api"
	acmenosql "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/certificates/authority"
	stepconfig "github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/policy"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"
)

// ACMEProvisioner names the internal ACME service: its directory is
// <CA URL>/acme/devicegate/directory.
const ACMEProvisioner = "devicegate"

// maxACMEBody bounds a JWS request body: a finalize with a large RSA CSR
// is a few KiB; nothing legitimate comes near this.
const maxACMEBody = 64 << 10

// ACME request budget per client IP: an issuance takes about a dozen
// requests, so this is generous for a proxy fleet behind one NAT, yet a
// flood (accounts, orders and unused nonces all take room in the ACME
// state) is cut to a trickle.
const (
	acmeRequestsPerWindow = 600
	acmeWindow            = 10 * time.Minute
)

// serverLeafTemplate is the x509util template of every server certificate
// the internal ACME service signs: the names the order validated, and
// serverAuth as the only EKU (never a certificate a device could use).
const serverLeafTemplate = `{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["serverAuth"],
	"basicConstraints": {"isCA": false}
}`

// ACMEServerOptions configure the internal ACME service.
type ACMEServerOptions struct {
	// Hosts the service certifies: DNS names, "*.domain" for any name
	// under domain, IP addresses or CIDR ranges. Nothing else is signed,
	// and challenges are only ever validated against these names.
	Hosts []string
	// Driver and DataSource of the ACME state (accounts, orders, nonces):
	// "bbolt" with a file path, or "postgresql" with a DSN, so every CA
	// node of a PostgreSQL deployment answers the same ACME clients.
	Driver     string
	DataSource string
	// PublicHost is host[:port] of the CA as clients reach it, used in the
	// links when a request names no Host.
	PublicHost string
}

// ACMEServer is the CA's RFC 8555 service for TLS server certificates of
// proxies and portals on other machines, signed by the server
// intermediate. Challenges: tls-alpn-01 and http-01.
type ACMEServer struct {
	auth    *authority.Authority
	db      nosql.DB
	acmeDB  acme.DB
	linker  acme.Linker
	client  acme.Client
	handler http.Handler
	budget  *ratelimit.Limiter // requests per client IP
}

// NewACMEServer opens the ACME state and builds the service.
func NewACMEServer(keys *Keys, o ACMEServerOptions) (*ACMEServer, error) {
	allowed, err := acmeAllowedNames(o.Hosts)
	if err != nil {
		return nil, err
	}
	if o.Driver != nosql.BBoltDriver && o.Driver != nosql.PostgreSQLDriver {
		return nil, fmt.Errorf("ACME state: driver %q is not bbolt or postgresql", o.Driver)
	}
	validity := &provisioner.Duration{Duration: ServerCertValidity}
	prov := &provisioner.ACME{
		Type:       "ACME",
		Name:       ACMEProvisioner,
		Challenges: []provisioner.ACMEChallenge{provisioner.TLS_ALPN_01, provisioner.HTTP_01},
		Claims: &provisioner.Claims{
			MinTLSDur:     &provisioner.Duration{Duration: time.Hour},
			MaxTLSDur:     validity,
			DefaultTLSDur: validity,
		},
		Options: &provisioner.Options{X509: &provisioner.X509Options{
			Template:     serverLeafTemplate,
			AllowedNames: allowed,
		}},
	}
	auth, err := authority.NewEmbedded(
		authority.WithConfig(&stepconfig.Config{AuthorityConfig: &stepconfig.AuthConfig{Provisioners: provisioner.List{prov}}}),
		authority.WithX509RootCerts(keys.Root),
		authority.WithX509SignerChain([]*x509.Certificate{keys.Server}, keys.ServerKey),
		authority.WithDatabase(noAuthorityDB{}),
		authority.WithX509Enforcers(exactHosts(o.Hosts)),
		authority.WithQuietInit(),
	)
	if err != nil {
		return nil, fmt.Errorf("start ACME authority: %w", err)
	}
	db, err := nosql.New(o.Driver, o.DataSource)
	if err != nil {
		return nil, fmt.Errorf("open ACME state: %w", err)
	}
	acmeDB, err := acmenosql.New(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ACME state: %w", err)
	}
	s := &ACMEServer{auth: auth, db: db, acmeDB: acmeDB, linker: acme.NewLinker(o.PublicHost, "acme"), client: acme.NewClient(),
		budget: ratelimit.New(acmeRequestsPerWindow, acmeWindow)}
	r := chi.NewRouter()
	r.Route("/acme", func(r chi.Router) { acmeapi.Route(r) })
	s.handler = r
	return s, nil
}

// ServeHTTP answers /acme/...: the request's context gets the authority
// and the ACME parts the smallstep handlers look up.
func (s *ACMEServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, now := clientIP(r), time.Now()
	if ok, wait := s.budget.Allowed(ip, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeACMEProblem(w, http.StatusTooManyRequests, "rateLimited", "too many requests from this address")
		return
	}
	s.budget.Fail(ip, now) // every request spends budget
	if r.ContentLength > maxACMEBody {
		writeACMEProblem(w, http.StatusRequestEntityTooLarge, "malformed", "request body too large")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxACMEBody)
	ctx := authority.NewContext(r.Context(), s.auth)
	ctx = acme.NewContext(ctx, s.acmeDB, s.client, s.linker, nil)
	s.handler.ServeHTTP(w, r.WithContext(ctx))
}

// writeACMEProblem answers with an RFC 8555 problem document.
func writeACMEProblem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"type":"urn:ietf:params:acme:error:%s","detail":%q}`+"\n", typ, detail)
}

// Close closes the ACME state.
func (s *ACMEServer) Close() error { return s.db.Close() }

// exactHosts is checked on every certificate just before it is signed.
// smallstep's name policy lets a plain DNS name also cover the names under
// it (gate.example allows x.gate.example); only "*.domain" should. A DNS
// name must equal a listed name or lie under a listed "*.domain".
type exactHosts []string

func (h exactHosts) Enforce(c *x509.Certificate) error {
	for _, name := range c.DNSNames {
		if !h.allows(strings.ToLower(name)) {
			return fmt.Errorf("ACME: %q is not among ca.acme.hosts", name)
		}
	}
	return nil
}

func (h exactHosts) allows(name string) bool {
	for _, host := range h {
		host = strings.ToLower(host)
		if d, ok := strings.CutPrefix(host, "*."); ok {
			if strings.HasSuffix(name, "."+d) {
				return true
			}
		} else if name == host {
			return true
		}
	}
	return false
}

// acmeAllowedNames turns the configured hosts into smallstep's name
// policy: exact DNS names, "*.domain" wildcards, IPs and CIDR ranges.
func acmeAllowedNames(hosts []string) (*policy.X509NameOptions, error) {
	if len(hosts) == 0 {
		return nil, errors.New("ACME: no hosts to certify")
	}
	names := &policy.X509NameOptions{}
	for _, h := range hosts {
		if err := config.ValidateACMEHost(h); err != nil {
			return nil, err
		}
		if strings.ContainsRune(h, ':') || net.ParseIP(h) != nil || strings.ContainsRune(h, '/') {
			names.IPRanges = append(names.IPRanges, h)
		} else {
			names.DNSDomains = append(names.DNSDomains, strings.ToLower(h))
		}
	}
	return names, nil
}

// noAuthorityDB satisfies the embedded (ACME) authority's database interface.
// devicegate's store is the source of truth for issued and revoked
// certificates, so the authority keeps nothing of its own.
type noAuthorityDB struct{}

func (noAuthorityDB) IsRevoked(string) (bool, error)             { return false, db.ErrNotImplemented }
func (noAuthorityDB) IsSSHRevoked(string) (bool, error)          { return false, db.ErrNotImplemented }
func (noAuthorityDB) Revoke(*db.RevokedCertificateInfo) error    { return db.ErrNotImplemented }
func (noAuthorityDB) RevokeSSH(*db.RevokedCertificateInfo) error { return db.ErrNotImplemented }
func (noAuthorityDB) GetCertificate(string) (*x509.Certificate, error) {
	return nil, db.ErrNotImplemented
}
func (noAuthorityDB) UseToken(string, string) (bool, error)   { return false, db.ErrNotImplemented }
func (noAuthorityDB) IsSSHHost(string) (bool, error)          { return false, db.ErrNotImplemented }
func (noAuthorityDB) GetSSHHostPrincipals() ([]string, error) { return nil, db.ErrNotImplemented }
func (noAuthorityDB) Shutdown() error                         { return nil }
