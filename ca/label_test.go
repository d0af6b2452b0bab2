package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/store"
)

// A label with invalid UTF-8 is refused with a clear error and issues
// nothing, whether it reaches Issue directly or through POST /v1/enroll
// (where the JSON decoder would quietly turn the byte into U+FFFD).
func TestEnrollRefusesInvalidUTF8Label(t *testing.T) {
	f := newFixture(t)
	f.alice = f.protectedSub("labels", 5) // room for every case: a refusal must not be a full quota
	url := startServer(t, f)
	c := httpClient(f, nil)
	for _, tc := range []struct {
		name   string
		label  string // raw bytes inside the JSON string
		status int
	}{
		{"valid", "前台 PC", http.StatusCreated},
		{"invalid byte", "front\xffdesk", http.StatusBadRequest},
		{"truncated sequence", "\xe5\x8f", http.StatusBadRequest},
		{"escaped replacement character", `front\ufffddesk`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := f.ticket(f.alice)
			csrJSON, _ := json.Marshal(string(newCSR(t, newKey(t), nil)))
			before := f.counts(f.alice)
			body := `{"code":"` + code + `","csr":` + string(csrJSON) + `,"label":"` + tc.label + `"}`
			resp, err := c.Post(url+"/v1/enroll", "application/json", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&out)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%+v), want %d", resp.StatusCode, out.Error, tc.status)
			}
			if tc.status != http.StatusCreated {
				if out.Error.Code != "invalid" || !strings.Contains(out.Error.Message, "UTF-8") {
					t.Fatalf("error %+v, want code invalid naming UTF-8", out.Error)
				}
				if after := f.counts(f.alice); after != before {
					t.Fatalf("refused enrollment changed the store: %+v -> %+v", before, after)
				}
			}
		})
	}
	if _, err := f.ca.Issue(f.ctx, IssueRequest{Code: f.ticket(f.alice), CSR: newCSR(t, newKey(t), nil), Label: "pc\xff"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Issue with an invalid UTF-8 label: %v, want ErrInvalid", err)
	}
}
