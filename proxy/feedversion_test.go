package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/api"
)

// A feed proxy reads only answers of the API version it speaks: a CA that
// states no version (older than versions: its feed has other field names)
// or another major version is refused and nothing is applied; the
// proxy states its own version on every request.
func TestFeedClientRefusesOtherAPIVersions(t *testing.T) {
	page := `{"seq":4,"subaccounts":[{"tenant_id":"t","id":"s","full_name":"shop:alice","status":"active","role":"operations","grants":null,"protection":{"enabled":true,"max_devices":1}}],` +
		`"devices":[{"id":"d","tenant_id":"t","sub_id":"s","serial":"ab","status":"active","expires_at":"2030-01-01T00:00:00Z"}]}`
	var answerVersion, gotVersion string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotVersion = r.Header.Get(api.VersionHeader)
		if answerVersion != "" {
			w.Header().Set(api.VersionHeader, answerVersion)
		}
		if r.URL.Path == api.AuditPath {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = io.WriteString(w, page)
	}))
	defer srv.Close()
	feed := NewFeedClient(srv.URL, srv.Client().Transport.(*http.Transport).TLSClientConfig, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"", false},
		{"2.0", false},
		{"0.1", false},
		{"one", false},
		{api.Version, true},
		{"1.3", true},
	} {
		answerVersion = tc.version
		ch, err := feed.PolicyChangesSince(ctx, 0)
		if gotVersion != api.Version {
			t.Errorf("the feed request stated version %q", gotVersion)
		}
		if !tc.ok {
			if !errors.Is(err, api.ErrVersion) || ch.Seq != 0 || len(ch.Devices) != 0 {
				t.Errorf("answer of version %q: %v, changes %+v", tc.version, err, ch)
			}
			if err := feed.AppendAuditBatch(ctx, nil); !errors.Is(err, api.ErrVersion) {
				t.Errorf("upload answered with version %q: %v", tc.version, err)
			}
			continue
		}
		if err != nil || ch.Seq != 4 || len(ch.SubAccounts) != 1 || ch.SubAccounts[0].FullName() != "shop:alice" ||
			len(ch.Devices) != 1 || ch.Devices[0].SubID != "s" {
			t.Errorf("answer of version %q: %v, changes %+v", tc.version, err, ch)
		}
		if err := feed.AppendAuditBatch(ctx, nil); err != nil {
			t.Errorf("upload answered with version %q: %v", tc.version, err)
		}
	}
}

// A refusal of the CA reaches the log with its status, code and message.
func TestFeedClientReportsTheCAsError(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.SetHeader(w.Header())
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"code":"proxy_refused","message":"proxy certificate refused\u001b[2J","message_zh":"代理证书未知"}}`)
	}))
	defer srv.Close()
	feed := NewFeedClient(srv.URL, srv.Client().Transport.(*http.Transport).TLSClientConfig, slog.New(slog.DiscardHandler))
	_, err := feed.PolicyChangesSince(context.Background(), 0)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "proxy_refused" || !strings.Contains(err.Error(), "HTTP 403") || strings.ContainsRune(err.Error(), '\x1b') {
		t.Fatalf("%v", err)
	}
}
