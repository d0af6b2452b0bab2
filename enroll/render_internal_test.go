package enroll

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A page whose template fails is answered whole or not at all: a 500 with
// the generic page (never the part executed before the failure), and the
// failure in the log. The legitimate page renders with its status.
func TestRenderFailsWhole(t *testing.T) {
	pg, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	p := &Portal{opts: Options{Now: time.Now, Log: log}, pages: pg, sessions: newSessions(nil, time.Now, log)}
	tests := []struct {
		name, page string
		data       any
		status     int
		body, log  string
	}{
		{"template fails half-way", "owner_sub", 42, http.StatusInternalServerError, failedPage, "can't evaluate field Sub"},
		{"no such page", "nope", nil, http.StatusInternalServerError, failedPage, "no such page"},
		{"legitimate page", "index", nil, http.StatusTeapot, `<header class="top">`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logged.Reset()
			w := httptest.NewRecorder()
			p.render(w, httptest.NewRequest("GET", "/x", nil), tc.status, tc.page, view{Data: tc.data})
			body := w.Body.String()
			if w.Code != tc.status || !strings.Contains(body, tc.body) || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("%d %q\n%s", w.Code, w.Header(), body)
			}
			if tc.status == http.StatusInternalServerError && body != failedPage {
				t.Fatalf("a failed page carries more than the generic page:\n%s", body)
			}
			if !strings.Contains(logged.String(), tc.log) || (tc.log == "") != (logged.Len() == 0) {
				t.Fatalf("log %q, want it to mention %q", logged.String(), tc.log)
			}
		})
	}
}
