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

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// FeedClient is a proxy's link to the CA when it has no database access:
// the policy feed (GET /v1/policy) as its PolicySource, and the audit and
// last-seen uploads (POST /v1/audit, /v1/seen) as its AuditSink. It
// authenticates with a proxy-role client certificate, states the API
// version on every request and reads only answers of a version it speaks;
// the bodies are api's.
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

func (f *FeedClient) fetch(ctx context.Context, since int64, wait time.Duration) (api.PolicyPage, error) {
	u := f.base + api.PolicyPath + "?since=" + strconv.FormatInt(since, 10) + "&wait=" + url.QueryEscape(wait.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return api.PolicyPage{}, err
	}
	api.SetHeader(req.Header)
	resp, err := f.client.Load().Do(req)
	if err != nil {
		return api.PolicyPage{}, fmt.Errorf("policy feed: %w", err)
	}
	defer resp.Body.Close()
	if err := checkAnswer(resp, http.StatusOK); err != nil {
		return api.PolicyPage{}, fmt.Errorf("policy feed: %w", err)
	}
	page, err := api.DecodePolicyPage(resp.Body, since)
	if err != nil {
		return api.PolicyPage{}, fmt.Errorf("policy feed: %w", err)
	}
	return page, nil
}

// maxErrorAnswer bounds what is read of the CA's error answer.
const maxErrorAnswer = 16 << 10

// checkAnswer wants status (0: any 2xx) and an answer of the API version
// this proxy speaks; otherwise it returns the status and the CA's error
// (an *api.Error).
func checkAnswer(resp *http.Response, want int) error {
	if (want == 0 && resp.StatusCode/100 != 2) || (want != 0 && resp.StatusCode != want) {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorAnswer))
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, api.DecodeError(resp.StatusCode, msg))
	}
	return api.CheckHeader(resp.Header, true)
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

// policyChanges is a feed page as the policy applies it: the store's
// types with what the feed carries (DecodePolicyPage checked the full
// names are "store:name").
func policyChanges(page api.PolicyPage) store.PolicyChanges {
	ch := store.PolicyChanges{Seq: page.Seq, SubAccounts: make([]store.SubAccount, 0, len(page.SubAccounts)), Devices: make([]store.Device, 0, len(page.Devices))}
	for _, a := range page.SubAccounts {
		tenantName, name, _ := strings.Cut(a.FullName, ":")
		ch.SubAccounts = append(ch.SubAccounts, store.SubAccount{ID: a.ID, TenantID: a.TenantID, TenantName: tenantName, Name: name,
			Role: a.Role, RoleEdited: a.RoleEdited, RolePoints: a.RolePoints, Grants: a.Grants, Status: store.SubStatus(a.Status),
			Protection: store.Protection{Enabled: a.Protection.Enabled, MaxDevices: a.Protection.MaxDevices},
			Window:     store.Window{NotBefore: a.Window.NotBefore, NotAfter: a.Window.NotAfter}, VerifyFrozen: a.NotVerified})
	}
	for _, d := range page.Devices {
		ch.Devices = append(ch.Devices, store.Device{ID: d.ID, TenantID: d.TenantID, SubID: d.SubID, Serial: d.Serial,
			Status: store.DeviceStatus(d.Status), ExpiresAt: d.ExpiresAt})
	}
	return ch
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
	api.SetHeader(req.Header)
	resp, err := f.client.Load().Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	if err := checkAnswer(resp, want); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(out); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// AppendAuditBatch uploads decisions to the CA's audit log. Who made them
// is the CA's to say (the proxy of the certificate); the client address
// and this proxy's time go as what the proxy observed.
func (f *FeedClient) AppendAuditBatch(ctx context.Context, records []store.AuditRecord) error {
	up := api.AuditUpload{Records: make([]api.AuditRecord, len(records))}
	for i, r := range records {
		up.Records[i] = api.AuditRecord{TenantID: r.TenantID, Time: r.Entry.Time, ClientIP: r.Entry.Actor.IP,
			Action: r.Entry.Action, Target: r.Entry.Target, Outcome: r.Entry.Outcome, Detail: r.Entry.Detail}
	}
	return f.post(ctx, api.AuditPath, up, 0, nil)
}

// TouchDevice reports a device's last use to the CA, which records its
// own time of receipt (at is not sent).
func (f *FeedClient) TouchDevice(ctx context.Context, tenantID, deviceID string, _ time.Time, ip string) error {
	return f.post(ctx, api.SeenPath, api.SeenUpload{Devices: []api.SeenDevice{{TenantID: tenantID, DeviceID: deviceID, IP: ip}}}, 0, nil)
}

// ReportApplied acknowledges to the CA that the snapshot has applied seq
// (api.PolicyAck), under the name of the current certificate: the CA
// refuses any other.
func (f *FeedClient) ReportApplied(ctx context.Context, seq int64) error {
	return f.post(ctx, api.PolicyAckPath, api.PolicyAck{Proxy: f.Name(), AppliedSeq: seq}, http.StatusNoContent, nil)
}

// Name is the proxy name of the current certificate (its URI SAN
// spiffe://<td>/proxy/<name>); the CA checks it against its record.
func (f *FeedClient) Name() string {
	leaf := f.leaf.Load()
	if leaf == nil || len(leaf.URIs) != 1 {
		return ""
	}
	name, _ := strings.CutPrefix(leaf.URIs[0].Path, "/proxy/")
	return name
}
