package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"
)

// A client that stops reading a response is cut after the write stall
// (the upstream connection is given up with it), on the HTTP/1.1 fast path
// and on net/http's HTTP/2; a client that keeps reading, however long the
// response takes in all, gets all of it.
func TestWriteStall(t *testing.T) {
	const stall = 300 * time.Millisecond
	e := newEnvWith(t, time.Minute, nil, func(o *Options) { o.WriteStall = stall })
	for _, tc := range []struct {
		name   string
		proto  string
		reads  bool
		wantOK bool
	}{
		{"HTTP/1.1 reader", "http/1.1", true, true},
		{"HTTP/1.1 stops reading", "http/1.1", false, false},
		{"HTTP/2 reader", "h2", true, true},
		{"HTTP/2 stops reading", "h2", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost", NextProtos: []string{tc.proto}},
				ForceAttemptHTTP2: tc.proto == "h2",
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(e.url + "/big")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if want := map[string]int{"http/1.1": 1, "h2": 2}[tc.proto]; resp.ProtoMajor != want {
				t.Fatalf("protocol %s", resp.Proto)
			}
			started := time.Now()
			if tc.reads {
				// 64 MiB in 1 MiB reads with pauses: it takes longer in
				// all than the stall, but never stalls.
				buf := make([]byte, 1<<20)
				var n int64
				for {
					k, err := io.ReadFull(resp.Body, buf)
					n += int64(k)
					if err != nil {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				if n != 64<<20 {
					t.Fatalf("read %d bytes, want 64 MiB", n)
				}
				if time.Since(started) < stall {
					t.Fatalf("the slow read took %v, not longer than the stall", time.Since(started))
				}
			}
			select {
			case err := <-e.bigWrites:
				if (err == nil) != tc.wantOK {
					t.Fatalf("upstream's response ended with %v", err)
				}
				if !tc.wantOK {
					t.Logf("a client that stopped reading was cut after %v", time.Since(started).Round(10*time.Millisecond))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream's response neither finished nor was cut within 10 s")
			}
		})
	}
	// The fast path served the HTTP/1.1 reader (the cut one is not counted).
	if e.srv.fastServed.Load() < 1 {
		t.Fatalf("fast path served %d requests", e.srv.fastServed.Load())
	}
}
