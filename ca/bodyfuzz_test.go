package ca

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// FuzzEnrollBody: whatever body reaches POST /v1/enroll, the CA answers
// with a status below 500 and a JSON error, and a refused request changes
// nothing (no device, no quota slot, no audit entry).
func FuzzEnrollBody(f *testing.F) {
	fx := newFixture(f)
	csr := newCSR(f, newKey(f), nil)
	code := fx.ticket(fx.alice)
	for _, s := range []string{
		`{"code":"` + code + `","csr":` + jsonString(string(csr)) + `,"label":"pc"}`,
		`{"code":"` + code + `","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----","label":"pc"}`,
		`{"code":"x","csr":"","label":"\xff"}`, `{"code":1}`, `[]`, `{}`, `{"code":"a"} {}`, `{"unknown":1}`, "",
		`{"code":"` + strings.Repeat("a", 1<<10) + `"}`,
	} {
		f.Add(s)
	}
	srv := NewServer(fx.ca)
	f.Fuzz(func(t *testing.T, body string) {
		fx.t = t // the fixture's helpers report to this input's test
		before := fx.counts(fx.alice)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/enroll", strings.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
		if w.Code == http.StatusCreated {
			return // the one valid code was used: later inputs are refused
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("%q: %d answered %q, not a JSON error", body, w.Code, w.Body)
		}
		if after := fx.counts(fx.alice); after != before {
			t.Fatalf("%q: refused (%d) but changed the store: %+v -> %+v", body, w.Code, before, after)
		}
	})
}

// FuzzOCSPRequest: any OCSP request (POST body or GET path) gets a
// well-formed OCSP response, never a crash or a 5xx.
func FuzzOCSPRequest(f *testing.F) {
	fx := newFixture(f)
	is := fx.issue(fx.alice)
	req, err := ocsp.CreateRequest(is.Chain[0], is.Chain[1], nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(req, true)
	f.Add(req, false)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, true)
	f.Add([]byte{}, false)
	srv := NewServer(fx.ca)
	f.Fuzz(func(t *testing.T, raw []byte, post bool) {
		var r *http.Request
		if post {
			r = httptest.NewRequest(http.MethodPost, "/ocsp", strings.NewReader(string(raw)))
		} else {
			r = httptest.NewRequest(http.MethodGet, "/ocsp/"+base64.URLEncoding.EncodeToString(raw), nil)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%x: %d", raw, w.Code)
		}
		if w.Code == http.StatusOK {
			if _, err := ocsp.ParseResponse(w.Body.Bytes(), nil); err != nil && !isOCSPError(err) {
				t.Fatalf("%x: not an OCSP response: %v", raw, err)
			}
		}
	})
}

// isOCSPError: a well-formed OCSP error response (malformed request,
// unauthorized, ...) rather than garbage.
func isOCSPError(err error) bool {
	_, ok := err.(ocsp.ResponseError)
	return ok
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
