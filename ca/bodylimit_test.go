package ca

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/api"
)

// An oversized request names the limit it actually broke: a small CSR in a
// body padded with JSON whitespace exceeds the body limit (not the CSR
// limit), and a CSR over MaxCSRBytes in a body that fits names the CSR
// limit. Padding within the body limit is just JSON and is accepted.
func TestEnrollSizeErrorsNameTheirLimit(t *testing.T) {
	f := newFixture(t)
	f.alice = f.protectedSub("sizes", 5)
	url := startServer(t, f)
	c := httpClient(f, nil)
	body := func(pad int, csr string) []byte {
		csrJSON, _ := json.Marshal(csr)
		return []byte(`{"code":"` + f.ticket(f.alice) + `",` + strings.Repeat(" ", pad) + `"csr":` + string(csrJSON) + `}`)
	}
	small := func() string { return string(newCSR(t, newKey(t), nil)) }
	for _, tc := range []struct {
		name     string
		body     []byte
		status   int
		code     string
		names    string // the limit the message must name
		notNames string
	}{
		{"padding within the body limit", body(maxEnrollBody/2, small()), http.StatusCreated, "", "", ""},
		{"whitespace-padded body", body(2*maxEnrollBody, small()), http.StatusRequestEntityTooLarge, "body_too_large", strconv.Itoa(maxEnrollBody), strconv.Itoa(MaxCSRBytes)},
		{"oversized CSR in a body that fits", body(0, small()+strings.Repeat("\n", MaxCSRBytes)), http.StatusRequestEntityTooLarge, "csr_too_large", strconv.Itoa(MaxCSRBytes), strconv.Itoa(maxEnrollBody)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.counts(f.alice)
			resp, err := c.Post(url+"/v1/enroll", "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&out)
			if resp.StatusCode != tc.status || out.Error.Code != tc.code {
				t.Fatalf("status %d %+v, want %d %q", resp.StatusCode, out.Error, tc.status, tc.code)
			}
			if tc.status == http.StatusCreated {
				return
			}
			if !strings.Contains(out.Error.Message, tc.names) || strings.Contains(out.Error.Message, tc.notNames) {
				t.Fatalf("message %q, want it to name %s (and not %s)", out.Error.Message, tc.names, tc.notNames)
			}
			if after := f.counts(f.alice); after.devices != before.devices {
				t.Fatalf("refused enrollment issued a device: %+v -> %+v", before, after)
			}
		})
	}
}
