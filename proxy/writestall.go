package proxy

import (
	"net/http"
	"time"
)

// DefaultWriteStall is how long a client may take no byte of a response
// before its connection is cut: a reader that stops reading must not hold
// its connection, a goroutine and an upstream connection for ever. Slow
// but live readers are not affected: every write gets the time anew.
const DefaultWriteStall = 30 * time.Second

// stallWriter gives every write of a net/http response the stall timeout,
// and clears it when the handler is done: net/http keeps a deadline set
// through ResponseController for the connection's later requests.
type stallWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	stall    time.Duration
	deadline lazyDeadline
}

func newStallWriter(w http.ResponseWriter, stall time.Duration) *stallWriter {
	return &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
}

func (w *stallWriter) arm() {
	if at := w.deadline.next(time.Now(), w.stall); !at.IsZero() {
		_ = w.rc.SetWriteDeadline(at)
	}
}

func (w *stallWriter) Write(p []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(p)
}

// Flush keeps streaming responses streaming through the wrapper.
func (w *stallWriter) Flush() {
	w.arm()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController (ReverseProxy's flushes, hijacks for
// upgrades) reach the connection.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// release clears the deadline for the connection's next request.
func (w *stallWriter) release() {
	if !w.deadline.at.IsZero() {
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}

// write writes p to the fast path's client with the stall timeout.
func (c *fastConn) write(p []byte) error {
	if at := c.writeDeadline.next(time.Now(), c.srv.gw.writeStall); !at.IsZero() {
		_ = c.tc.SetWriteDeadline(at)
	}
	_, err := c.tc.Write(p)
	return err
}
