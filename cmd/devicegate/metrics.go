package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/devicegate/devicegate/ca"
)

// roleMetrics is one process's metrics registry (no global registry) and
// its certificate expiry gauges, which several parts of a role add to (in
// `devicegate demo` the CA's and the proxy's share one).
type roleMetrics struct {
	reg   *prometheus.Registry
	certs *certExpiry
}

func newRoleMetrics() *roleMetrics {
	m := &roleMetrics{reg: prometheus.NewRegistry(), certs: &certExpiry{}}
	m.reg.MustRegister(m.certs)
	return m
}

// listenAdmin serves the registry at /metrics on addr (plain HTTP).
func (m *roleMetrics) listenAdmin(addr string, withPprof bool, log *slog.Logger) (*server, error) {
	return listenAdmin(addr, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}), withPprof, log)
}

// Certificate kinds of devicegate_cert_expiry_timestamp_seconds.
const (
	certKindRoot         = "root"         // the CA root (its key offline)
	certKindIntermediate = "intermediate" // device and server intermediates
	certKindServer       = "server"       // a listener's TLS server certificate
	certKindProxy        = "proxy"        // an edge proxy's client certificate to the CA's feed
)

var certExpiryDesc = prometheus.NewDesc("devicegate_cert_expiry_timestamp_seconds",
	"NotAfter of a certificate this process uses, as a Unix time (alert on it minus time()).",
	[]string{"kind", "subject", "serial"}, nil)

// certExpiry exports the NotAfter of every certificate its sources return
// when scraped, so renewed or rotated certificates show up without a
// restart. A certificate reported twice (the CA's and the proxy's
// listeners in one process) is exported once.
type certExpiry struct {
	mu      sync.Mutex
	sources []certSource
}

type certSource struct {
	kind  string
	certs func() []*x509.Certificate
}

// add reports the certificates certs returns (read at every scrape) as kind.
func (c *certExpiry) add(kind string, certs func() []*x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = append(c.sources, certSource{kind, certs})
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := append([]certSource(nil), c.sources...)
	c.mu.Unlock()
	type key struct{ kind, subject, serial string }
	seen := map[key]bool{}
	for _, s := range sources {
		for _, cert := range s.certs() {
			if cert == nil {
				continue
			}
			k := key{s.kind, certSubject(cert), fmt.Sprintf("%x", cert.SerialNumber)}
			if seen[k] {
				continue
			}
			seen[k] = true
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue,
				float64(cert.NotAfter.Unix()), k.kind, k.subject, k.serial)
		}
	}
}

// certSubject names a certificate for people: its common name, else its
// first DNS or IP name.
func certSubject(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	}
	return ""
}

// certsFromFile is a source that reads a PEM file at every scrape (a
// credentials directory renewed or rotated in place); unreadable: none.
func certsFromFile(path string) func() []*x509.Certificate {
	return func() []*x509.Certificate {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var out []*x509.Certificate
		for {
			var b *pem.Block
			if b, data = pem.Decode(data); b == nil {
				return out
			}
			if c, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
				out = append(out, c)
			}
		}
	}
}

// servedCertificate is a source of the certificate tc serves for
// serverName now (renewed by certmagic in place), as a handshake would
// get it. None when it has none yet (ACME still pending).
func servedCertificate(tc *tls.Config, serverName string) func() []*x509.Certificate {
	return func() (out []*x509.Certificate) {
		if tc == nil || tc.GetCertificate == nil {
			return nil
		}
		// certmagic logs the connection's addresses on a miss: give it one.
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		cert, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: serverName, Conn: c1})
		if err != nil || cert == nil {
			return nil
		}
		leaf := cert.Leaf
		if leaf == nil && len(cert.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(cert.Certificate[0])
		}
		return []*x509.Certificate{leaf}
	}
}

// tlsServerName is the name asked for when looking up a listener's served
// certificate: the first of tls.hosts ("" falls back to the certificate
// served without SNI).
func tlsServerName(hosts []string) string {
	if len(hosts) == 0 {
		return ""
	}
	return hosts[0]
}

// metrics is the process's registry, made on first use.
func (a *app) metrics() *roleMetrics {
	if a.roleMetrics == nil {
		a.roleMetrics = newRoleMetrics()
	}
	return a.roleMetrics
}

// exportCAMetrics puts the CA node's metrics on the process's registry:
// issuance outcomes, and the expiry of the root, the intermediates and the
// CA listener's server certificate.
func (a *app) exportCAMetrics(caSrv *server) {
	m := a.metrics()
	a.ca.RegisterMetrics(m.reg)
	m.certs.add(certKindRoot, func() []*x509.Certificate { return []*x509.Certificate{a.ca.Keys().Root} })
	m.certs.add(certKindIntermediate, func() []*x509.Certificate {
		k := a.ca.Keys()
		return append(trustedDeviceCAs(k), k.Server)
	})
	m.certs.add(certKindServer, servedCertificate(caSrv.srv.TLSConfig, tlsServerName(a.cfg.TLS.Hosts)))
}

// trustedDeviceCAs are the device intermediates devices are verified with
// (the active one and those still trusted during a rotation).
func trustedDeviceCAs(k *ca.Keys) []*x509.Certificate {
	out := []*x509.Certificate{k.Device}
	for _, d := range k.DeviceCAs {
		out = append(out, d.Cert)
	}
	return out
}
