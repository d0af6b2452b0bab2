package ca

import (
	"maps"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devicegate/devicegate/store"
	"github.com/devicegate/devicegate/store/storetest"
)

// gaugeValues reads devicegate_ca_intermediate_active_devices from reg by
// "intermediate/state".
func gaugeValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "devicegate_ca_intermediate_active_devices" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["intermediate"]+"/"+labels["state"]] = m.GetGauge().GetValue()
		}
	}
	return got
}

// TestIntermediateGauge: the gauge counts active devices per device
// intermediate (revoked ones not, in every store), counts again when the
// intermediates change, and otherwise at most every
// intermediateCountEvery (a scrape does not read every device each time).
func TestIntermediateGauge(t *testing.T) {
	f := newFixture(t)
	caDir := filepath.Join(f.dir, "ca")
	other := storetest.Tenant(t, f.store, "other")
	f.issue(f.alice)
	revoked := f.issue(f.alice)
	f.issue(f.subIn(other, "bee", 2))
	if _, err := f.ca.RevokeDevice(f.ctx, f.tenant.ID, revoked.Device.ID, store.ReasonKeyCompromise, testActor); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	f.ca.RegisterMetrics(reg)
	steps := []struct {
		name string
		do   func(t *testing.T) *prometheus.Registry
		want map[string]float64
	}{
		{"one intermediate", func(*testing.T) *prometheus.Registry { return reg },
			map[string]float64{"devices/active": 2, "unattributed/": 0}},
		{"a new device within the count interval: the last count", func(*testing.T) *prometheus.Registry {
			f.issue(f.protectedSub("carl", 2))
			return reg
		}, map[string]float64{"devices/active": 2, "unattributed/": 0}},
		{"rotated: counted again", func(t *testing.T) *prometheus.Registry {
			if _, err := NewIntermediate(caDir, "", f.now); err != nil {
				t.Fatal(err)
			}
			if err := ActivateIntermediate(caDir, "devices-2"); err != nil {
				t.Fatal(err)
			}
			f.restart(caDir)
			f.issue(f.subIn(other, "dora", 2))
			reg := prometheus.NewRegistry()
			f.ca.RegisterMetrics(reg)
			return reg
		}, map[string]float64{"devices-2/active": 1, "devices/trusted": 3, "unattributed/": 0}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := gaugeValues(t, s.do(t)); !maps.Equal(got, s.want) {
				t.Fatalf("gauge %v, want %v", got, s.want)
			}
		})
		if t.Failed() {
			break
		}
	}
}
