package ca

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/devicegate/devicegate/api"
)

// The enrollment routes take a request without a version as version 1
// (scripts, older CLIs) and refuse a major version they do not speak
// before reading the body (400 unsupported_version, nothing issued); every
// answer states the CA's version.
func TestEnrollAPIVersion(t *testing.T) {
	f := newFixture(t)
	url := startServer(t, f)
	c := httpClient(f, nil)
	sub := f.protectedSub("versions", 5)
	for _, tc := range []struct {
		name    string
		version string // "" sends none
		status  int
		code    string
	}{
		{"no version: version 1", "", http.StatusCreated, ""},
		{"this version", api.Version, http.StatusCreated, ""},
		{"a later minor version", "1.9", http.StatusCreated, ""},
		{"a later major version", "2.0", http.StatusBadRequest, "unsupported_version"},
		{"an earlier major version", "0.1", http.StatusBadRequest, "unsupported_version"},
		{"not a version", "latest", http.StatusBadRequest, "unsupported_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := f.ticket(sub)
			before := f.counts(sub)
			body, _ := json.Marshal(api.EnrollRequest{Code: code, CSR: string(newCSR(t, newKey(t), nil)), Label: "pc"})
			req, _ := http.NewRequest(http.MethodPost, url+api.EnrollPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tc.version != "" {
				req.Header.Set(api.VersionHeader, tc.version)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get(api.VersionHeader); got != api.Version {
				t.Errorf("answer states version %q", got)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.code == "" {
				var out api.Certificate
				if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.DeviceID == "" || out.NotAfter.IsZero() {
					t.Fatalf("answer %+v: %v", out, err)
				}
				return
			}
			var out api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&out)
			if out.Error.Code != tc.code || out.Error.MessageZH == "" {
				t.Fatalf("error %+v, want %q", out.Error, tc.code)
			}
			if after := f.counts(sub); after != before {
				t.Fatalf("a refused version changed the devices: %v -> %v", before, after)
			}
		})
	}
}
