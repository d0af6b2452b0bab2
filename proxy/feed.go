package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/devicegate/devicegate/store"
)

// FeedClient is a proxy's link to the CA when it has no database access:
// the policy feed (GET /v1/policy) as its PolicySource, and the audit and
// last-seen uploads (POST /v1/audit, /v1/seen) as its AuditSink. It
// authenticates with a proxy-role client certificate.
type FeedClient struct {
	base string
	log  *slog.Logger
	tc   *tls.Config // the CA's root; Certificates[0] is the first certificate
	// client carries the current certificate: a renewal swaps in a client
	// whose new connections present the renewed one.
	client atomic.Pointer[http.Client]
	leaf   atomic.Pointer[x509.Certificate]
}

// feedWait is how long one watch request waits for a change.
const feedWait = 25 * time.Second

// NewFeedClient talks to the CA at base with tc (client certificate and
// the CA's root).
func NewFeedClient(base string, tc *tls.Config, log *slog.Logger) *FeedClient {
	f := &FeedClient{base: strings.TrimSuffix(base, "/"), log: log, tc: tc}
	if len(tc.Certificates) > 0 {
		f.useCertificate(tc.Certificates[0])
	} else {
		f.client.Store(newFeedHTTPClient(tc))
	}
	return f
}

func newFeedHTTPClient(tc *tls.Config) *http.Client {
	// Idle connections close, so those of a replaced certificate end too.
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second},
		Timeout: feedWait + 10*time.Second}
}

// useCertificate makes new requests go over new connections with cert.
func (f *FeedClient) useCertificate(cert tls.Certificate) {
	tc := f.tc.Clone()
	tc.Certificates = []tls.Certificate{cert}
	old := f.client.Swap(newFeedHTTPClient(tc))
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	f.leaf.Store(cert.Leaf)
	if old != nil {
		old.CloseIdleConnections()
	}
}

// policyPage mirrors the CA's answer.
type policyPage struct {
	Seq         int64              `json:"seq"`
	SubAccounts []store.SubAccount `json:"subaccounts"`
	Devices     []store.Device     `json:"devices"`
}

func (f *FeedClient) fetch(ctx context.Context, since int64, wait time.Duration) (policyPage, error) {
	u := f.base + "/v1/policy?since=" + strconv.FormatInt(since, 10) + "&wait=" + url.QueryEscape(wait.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return policyPage{}, err
	}
	resp, err := f.client.Load().Do(req)
	if err != nil {
		return policyPage{}, fmt.Errorf("policy feed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return policyPage{}, fmt.Errorf("policy feed: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return decodePolicyPage(resp.Body, since)
}

// maxPolicyPage bounds one feed page (the CA pages its answers; a first
// sync of a large installation is the biggest).
const maxPolicyPage = 64 << 20

// decodePolicyPage reads one page of the feed; a page whose seq is older
// than the one asked for is refused (the policy never goes back).
func decodePolicyPage(r io.Reader, since int64) (policyPage, error) {
	var page policyPage
	dec := json.NewDecoder(io.LimitReader(r, maxPolicyPage))
	if err := dec.Decode(&page); err != nil {
		return policyPage{}, fmt.Errorf("policy feed: %w", err)
	}
	if page.Seq < since {
		return policyPage{}, fmt.Errorf("policy feed: seq went back from %d to %d", since, page.Seq)
	}
	return page, nil
}

// PolicyChangesSince asks the CA for the changes after afterSeq, without
// waiting.
func (f *FeedClient) PolicyChangesSince(ctx context.Context, afterSeq int64) (store.PolicyChanges, error) {
	page, err := f.fetch(ctx, afterSeq, 0)
	if err != nil {
		return store.PolicyChanges{}, err
	}
	return policyChanges(page), nil
}

// policyChanges is a feed page as the policy applies it.
func policyChanges(page policyPage) store.PolicyChanges {
	return store.PolicyChanges{Seq: page.Seq, SubAccounts: page.SubAccounts, Devices: page.Devices}
}

// Watch long-polls the feed from the policy's seq and kicks a sync as soon
// as anything changed, so a revocation reaches this proxy in about one
// round trip rather than one poll interval. A failed request is logged and
// retried with backoff (the policy's staleness makes high-risk paths fail
// closed meanwhile), so it returns nil, when ctx ends.
func (f *FeedClient) Watch(ctx context.Context, p *Policy) error {
	backoff := time.Second
	for ctx.Err() == nil {
		since := p.Snapshot().Seq
		page, err := f.fetch(ctx, since, feedWait)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("policy feed watch failed", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
			}
			continue
		}
		backoff = time.Second
		if page.Seq > since {
			p.Kick()
		}
	}
	return nil
}

// post sends v as JSON to the CA and wants want back (0: any 2xx); when
// out is not nil, the answer (at most 64 KiB) is decoded into it.
func (f *FeedClient) post(ctx context.Context, path string, v any, want int, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Load().Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	if (want == 0 && resp.StatusCode/100 != 2) || (want != 0 && resp.StatusCode != want) {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(out); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// AppendAuditBatch uploads decisions to the CA's audit log.
func (f *FeedClient) AppendAuditBatch(ctx context.Context, records []store.AuditRecord) error {
	return f.post(ctx, "/v1/audit", map[string]any{"records": records}, 0, nil)
}

// SeenDevice is one "last seen" report of POST /v1/seen.
type SeenDevice struct {
	TenantID string    `json:"tenant_id"`
	DeviceID string    `json:"device_id"`
	At       time.Time `json:"at"`
	IP       string    `json:"ip"`
}

// TouchDevice reports a device's last use to the CA.
func (f *FeedClient) TouchDevice(ctx context.Context, tenantID, deviceID string, at time.Time, ip string) error {
	return f.post(ctx, "/v1/seen", map[string]any{"devices": []SeenDevice{{TenantID: tenantID, DeviceID: deviceID, At: at, IP: ip}}}, 0, nil)
}
