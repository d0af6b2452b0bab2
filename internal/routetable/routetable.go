// Package routetable lets a server build its mux from one table that tests
// can also list, so a test can demand a case for every route (the tenant
// isolation matrices of the CA API, the portal and the admin CLI).
package routetable

import (
	"net/http"
	"slices"
	"testing"
)

// Router is what a server's route table registers on: its *http.ServeMux,
// or Patterns to only list them.
type Router interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
	Handle(pattern string, handler http.Handler)
}

// Patterns records the patterns registered on it, in order.
type Patterns []string

// HandleFunc records pattern.
func (l *Patterns) HandleFunc(pattern string, _ func(http.ResponseWriter, *http.Request)) {
	*l = append(*l, pattern)
}

// Handle records pattern.
func (l *Patterns) Handle(pattern string, _ http.Handler) { *l = append(*l, pattern) }

// Covered fails t for every entry of names (routes or commands) without a
// case in cases, and for every case of a name that no longer exists; what
// names the table and where its cases are kept, for the messages.
func Covered[V any](t testing.TB, what, casesFunc string, names []string, cases map[string]V) {
	t.Helper()
	for _, n := range names {
		if _, ok := cases[n]; !ok {
			t.Errorf("%s %q has no isolation case: add one to %s (or an exemption with its reason)", what, n, casesFunc)
		}
	}
	for n := range cases {
		if !slices.Contains(names, n) {
			t.Errorf("isolation case for %q, which is no %s", n, what)
		}
	}
}
