package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"sync/atomic"
)

// DeviceCAs are the device intermediates a proxy trusts, replaceable while
// it runs: during a rotation of the device intermediate the old and the
// new one are both trusted, and a retired one is refused by name. Set
// swaps the whole set at once; handshakes after it verify against the new
// set, and the certificates verified under the old one are verified again.
type DeviceCAs struct {
	cur atomic.Pointer[deviceTrust]
}

// deviceTrust is one immutable set.
type deviceTrust struct {
	id           [32]byte // the set's identity: its certificates, in order
	pool         *x509.CertPool
	trusted      []*x509.Certificate // what pool holds (Trusted)
	retired      *x509.CertPool      // nil: none
	retiredCerts []*x509.Certificate
	names        map[string]string // retired certificate DER -> its name
	verified     *verifiedCache    // chains verified under this set only

	once sync.Once   // builds cfg at the first handshake under this set
	cfg  *tls.Config // the listener's config with this set as ClientCAs
}

// NewDeviceCAs trusts the device intermediates trusted; retired ones
// (may be empty) are refused with their own reason.
func NewDeviceCAs(trusted, retired []*x509.Certificate) *DeviceCAs {
	d := &DeviceCAs{}
	d.Set(trusted, retired)
	return d
}

// fixedDeviceCAs trusts pool and never changes (ConfigureTLS).
func fixedDeviceCAs(pool *x509.CertPool) *DeviceCAs {
	d := &DeviceCAs{}
	d.cur.Store(&deviceTrust{pool: pool, verified: newVerifiedCache()})
	return d
}

// Set replaces the trusted and retired intermediates and reports whether
// they changed. An empty trusted set is ignored (it would refuse every
// device: a broken reload, not a decision), and reported unchanged.
func (d *DeviceCAs) Set(trusted, retired []*x509.Certificate) bool {
	if len(trusted) == 0 {
		return false
	}
	id := setID(trusted, retired)
	if cur := d.cur.Load(); cur != nil && cur.id == id {
		return false
	}
	t := &deviceTrust{id: id, pool: x509.NewCertPool(), trusted: trusted, names: map[string]string{}, verified: newVerifiedCache()}
	for _, c := range trusted {
		t.pool.AddCert(c)
	}
	if len(retired) > 0 {
		t.retired = x509.NewCertPool()
		for _, c := range retired {
			t.retired.AddCert(c)
			t.names[string(c.Raw)] = c.Subject.CommonName
		}
		t.retiredCerts = retired
	}
	d.cur.Store(t)
	return true
}

// Pool is the trusted intermediates now.
func (d *DeviceCAs) Pool() *x509.CertPool { return d.cur.Load().pool }

// Trusted are the trusted intermediates now (their expiry is exported as
// a metric; nil for a fixed pool).
func (d *DeviceCAs) Trusted() []*x509.Certificate { return d.cur.Load().trusted }

func setID(trusted, retired []*x509.Certificate) [32]byte {
	h := sha256.New()
	for _, list := range [][]*x509.Certificate{trusted, retired} {
		for _, c := range list {
			sum := sha256.Sum256(c.Raw)
			h.Write(sum[:])
		}
		h.Write([]byte{0})
	}
	var id [32]byte
	copy(id[:], h.Sum(nil))
	return id
}

// retiredIssuer names the retired intermediate leaf chains to ("" for none).
func (t *deviceTrust) retiredIssuer(leaf *x509.Certificate, opts x509.VerifyOptions) string {
	if t.retired == nil {
		return ""
	}
	opts.Roots = t.retired
	chains, err := leaf.Verify(opts)
	if err != nil || len(chains) == 0 {
		return ""
	}
	return t.names[string(chains[0][len(chains[0])-1].Raw)]
}

// issuedByRetired reports whether leaf's issuer is a retired intermediate:
// a connection made before the retirement keeps its certificate, and its
// requests are refused from then on. The chain was verified in the
// handshake, so the issuer's name and key id identify it (one key, one
// intermediate).
func (d *DeviceCAs) issuedByRetired(leaf *x509.Certificate) bool {
	t := d.cur.Load()
	if leaf == nil {
		return false
	}
	for _, c := range t.retiredCerts {
		if bytes.Equal(leaf.RawIssuer, c.RawSubject) && bytes.Equal(leaf.AuthorityKeyId, c.SubjectKeyId) {
			return true
		}
	}
	return false
}
