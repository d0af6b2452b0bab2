package proxy

import "testing"

// Giving a buffer back costs no allocation (the fast path takes one per
// request), and only whole buffers are handed out.
func TestBufferPoolPutAllocatesNothing(t *testing.T) {
	p := newBufferPool()
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("buffer of %d bytes", len(b))
	}
	// Put alone: a sync.Pool may drop what it is given (at random under
	// the race detector), and Get then makes a new buffer, by design.
	if allocs := testing.AllocsPerRun(100, func() { p.Put(b) }); allocs != 0 {
		t.Fatalf("%v allocations per Put, want 0", allocs)
	}
	p.Put(make([]byte, 10)) // too small: dropped, never handed out
	if b := p.Get(); len(b) != copyBufferSize {
		t.Fatalf("buffer of %d bytes", len(b))
	}
}
