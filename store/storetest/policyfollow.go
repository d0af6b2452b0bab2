package storetest

import (
	"sync"
	"testing"

	"github.com/devicegate/devicegate/store"
)

// testPolicyChangesFollowed follows PolicyChangesSince, as a proxy does,
// while revocations commit concurrently: an answer complete up to seq S
// must hold every revocation whose seq is <= S (one that committed before
// the question was asked and was left out would never come again: the
// next question starts after S), and following to the end leaves no
// revoked device active.
func testPolicyChangesFollowed(t *testing.T, e *env) {
	const subs, per = 8, 5
	var devs []store.Device
	for i := range subs {
		s := e.protected(e.tenant, "follow"+string(rune('a'+i)), per)
		for range per {
			devs = append(devs, e.issue(s))
		}
	}
	first, err := e.st.PolicyChangesSince(e.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	active := map[string]bool{}
	for _, d := range first.Devices {
		active[d.ID] = d.Status == store.DeviceActive
	}
	seq := first.Seq
	var mu sync.Mutex
	var committed []store.Revocation // answered revocations, in answer order
	follow := func() {
		t.Helper()
		mu.Lock()
		known := append([]store.Revocation(nil), committed...) // committed before the question
		mu.Unlock()
		ch, err := e.st.PolicyChangesSince(e.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Seq < seq {
			t.Fatalf("seq went back from %d to %d", seq, ch.Seq)
		}
		for _, d := range ch.Devices {
			active[d.ID] = d.Status == store.DeviceActive
		}
		seq = ch.Seq
		for _, rv := range known {
			if rv.Seq <= seq && active[rv.DeviceID] {
				t.Fatalf("changes complete up to seq %d lack the revocation of device %s (seq %d)", seq, rv.DeviceID, rv.Seq)
			}
		}
	}
	// Every revocation at once: more writers than the PostgreSQL store's
	// 16 connections, each transaction running statements not prepared
	// yet (which once hung them all: Dialect.DriverCachesStatements).
	done := make(chan []error)
	go func() {
		done <- race(len(devs), func(i int) error {
			rv, err := e.st.RevokeDevice(e.ctx, e.tenant.ID, devs[i].ID, store.ReasonUnspecified, actor)
			if err == nil {
				mu.Lock()
				committed = append(committed, rv)
				mu.Unlock()
			}
			return err
		})
	}()
	for running := true; running; {
		select {
		case errs := <-done:
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			running = false
		default:
		}
		follow()
	}
	for _, d := range devs {
		if active[d.ID] {
			t.Errorf("device %s still active after following every change", d.ID)
		}
	}
}
