// Package ca is devicegate's certificate authority: it issues device
// certificates within each sub-account's quota, renews and revokes them,
// and publishes revocations as a CRL, over OCSP and as a feed for proxies.
package ca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/internal/identity"
	"github.com/devicegate/devicegate/internal/ratelimit"
	"github.com/devicegate/devicegate/store"
)

// Options configure an Authority. Zero values get the documented defaults.
type Options struct {
	TrustDomain string        // SPIFFE trust domain of device URIs
	Validity    time.Duration // device certificate lifetime, default 365 days
	TicketTTL   time.Duration // enrollment code lifetime, default 30 minutes
	AllowRSA    bool          // accept RSA >= 2048 besides P-256
	CRLFile     string        // where the PEM CRL is written (optional)
	CRLValidity time.Duration // nextUpdate distance, default 7 days
	PublicURL   string        // https://host:port of this CA; device certificates name <PublicURL>/crl and /ocsp (optional)
	Logger      *slog.Logger
	Now         func() time.Time // for tests
	// Dir is the CA directory Run reads the device intermediates from
	// again every ReloadEvery (default 10 s), so a rotation reaches a
	// running node without a restart ("": never; intermediatereload.go).
	Dir         string
	ReloadEvery time.Duration
}

func (o *Options) setDefaults() error {
	if o.TrustDomain == "" {
		o.TrustDomain = "devicegate.local"
	}
	if err := identity.ValidateTrustDomain(o.TrustDomain); err != nil {
		return err
	}
	if o.Validity == 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if o.TicketTTL == 0 {
		o.TicketTTL = 30 * time.Minute
	}
	if o.CRLValidity == 0 {
		o.CRLValidity = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReloadEvery == 0 {
		o.ReloadEvery = 10 * time.Second
	}
	if o.Validity < time.Hour {
		return errors.New("certificate validity must be at least 1h")
	}
	return checkPublicURL(o.PublicURL)
}

// checkPublicURL accepts "" or an absolute http(s) URL without query,
// fragment or credentials: it is written into every device certificate.
func checkPublicURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("CA public URL %q must be an absolute https URL without query, fragment or credentials", raw)
	}
	return nil
}

// Authority issues, renews and revokes device certificates.
type Authority struct {
	opts  Options
	store store.Store
	// cur is the device intermediates in use and the signer of the active
	// one, swapped together when Run finds a rotation in the CA directory.
	// An operation loads it once and uses that one throughout.
	cur  atomic.Pointer[issuing]
	revs *revocationState
	// renewals counts each device's renewals in the store (renewlimit.go).
	renewals *ratelimit.Shared

	onRevoke atomic.Pointer[func()]
	metrics  *issueMetrics // RegisterMetrics; nil: not exported
}

// issuing is the key material an Authority works with at one moment.
type issuing struct {
	keys   *Keys
	signer *signer
}

// OnRevoke registers fn to be called after every revocation this authority
// makes: an in-process proxy then syncs at once instead of at its next poll.
func (a *Authority) OnRevoke(fn func()) { a.onRevoke.Store(&fn) }

// New starts an Authority over loaded keys and an open store. It builds the
// first CRL before returning, so a broken store fails start-up.
func New(ctx context.Context, keys *Keys, st store.Store, opts Options) (*Authority, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s, err := newDeviceSigner(keys)
	if err != nil {
		return nil, err
	}
	a := &Authority{opts: opts, store: st,
		renewals: ratelimit.NewShared(st, "renew:", maxRenewals, renewalWindow, opts.Logger)}
	a.cur.Store(&issuing{keys: keys, signer: s})
	a.revs = newRevocationState(a)
	if err := a.revs.refresh(ctx); err != nil {
		return nil, fmt.Errorf("build CRL: %w", err)
	}
	return a, nil
}

// Keys returns the CA's certificates (and online keys) in use now: after a
// rotation Run has picked up, the new set.
func (a *Authority) Keys() *Keys { return a.cur.Load().keys }

// TrustDomain is the SPIFFE trust domain of the identities we issue.
func (a *Authority) TrustDomain() string { return a.opts.TrustDomain }

func (a *Authority) now() time.Time { return a.opts.Now() }

// crlTick is how often Run polls the store's change seq and, when it
// moved, reads the revocations since and signs a CRL if there are any: the
// bound on how far the CRL trails a revocation made elsewhere.
const crlTick = 250 * time.Millisecond

// Run keeps the CRL fresh until ctx ends: it notices revocations made by
// other processes on the same store (the admin CLI, another node) by polling
// the store's change sequence (one cheap read) every 250 ms, so feeds and
// the CRL follow within well under a second, and re-signs the CRL before it
// expires. A failed refresh is logged and tried again at the next tick (the
// CRL served meanwhile is the last one built), so Run returns nil, when ctx
// ends. With Options.Dir it also follows a rotation of the device
// intermediates there (intermediatereload.go).
func (a *Authority) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { a.watchIntermediates(ctx) })
	a.revs.run(ctx, crlTick)
	wg.Wait()
	return nil
}

// Changed tells a running authority that the store changed elsewhere (a
// PostgreSQL notification: another node's revocation, say). Run then reads
// the new revocations at once, so OCSP and the proxies' feeds follow
// without waiting for the next tick; the CRL is signed at the tick, as for
// a revocation of its own. It never blocks, and kicks coalesce.
func (a *Authority) Changed() {
	select {
	case a.revs.kick <- struct{}{}:
	default:
	}
}
