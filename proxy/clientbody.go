package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// clientBody remembers why reading the client's request body failed, so a
// forwarding error it caused (a malformed chunked body, a client that went
// away mid-body) is answered as the client's fault (400), not the
// upstream's (502).
type clientBody struct {
	io.ReadCloser
	failed atomic.Pointer[error] // set by the transport's goroutine, read by the handler's
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, http.ErrBodyReadAfterClose) {
		b.failed.CompareAndSwap(nil, &err)
	}
	return n, err
}

// clientBodyKey is the request context key of the request's clientBody
// (ReverseProxy hands its error handler the request, but may have wrapped
// the body by then).
type clientBodyKey struct{}

// wrapClientBody puts a clientBody around r's body, if it has one.
func wrapClientBody(r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	b := &clientBody{ReadCloser: r.Body}
	r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, b))
	r.Body = b
	return r
}

// clientBodyFailed: the request's body could not be read from the client.
func clientBodyFailed(r *http.Request) bool {
	b, ok := r.Context().Value(clientBodyKey{}).(*clientBody)
	return ok && b.failed.Load() != nil
}
