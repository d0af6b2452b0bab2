package proxy

import (
	"context"
	"net/http"
)

// contextWithPath carries the canonical path to the upstream rewrite, so
// the decision and the upstream see the same path.
func contextWithPath(r *http.Request, path string) context.Context {
	return context.WithValue(r.Context(), canonicalKey{}, path)
}
