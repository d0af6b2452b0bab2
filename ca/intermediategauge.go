package ca

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// intermediateCountEvery bounds how often a scrape counts the devices per
// intermediate again (one read of every active device's certificate,
// about 5 µs each): the gauge trails by at most this much, and a node
// nobody scrapes never counts.
const intermediateCountEvery = 5 * time.Minute

// intermediateCountTimeout bounds one count made by a scrape.
const intermediateCountTimeout = 10 * time.Second

var intermediateDevicesDesc = prometheus.NewDesc("devicegate_ca_intermediate_active_devices",
	"Active (unrevoked, unexpired) devices whose current certificate a device intermediate issued, in every store; "+
		`intermediate="unattributed": devices whose issuer is unknown. Retire an old intermediate once it is 0.`,
	[]string{"intermediate", "state"}, nil)

// intermediateGauge exports the last count, made again at a scrape once
// it is older than intermediateCountEvery or the intermediates changed.
type intermediateGauge struct {
	a *Authority

	mu      sync.Mutex
	keys    *Keys // the intermediates the count is of
	at      time.Time
	counted IntermediateUses
}

func (g *intermediateGauge) Describe(ch chan<- *prometheus.Desc) { ch <- intermediateDevicesDesc }

func (g *intermediateGauge) Collect(ch chan<- prometheus.Metric) {
	uses, ok := g.current()
	if !ok {
		return // no count: the series is absent rather than wrong
	}
	for _, u := range uses.Intermediates {
		if u.Countable {
			ch <- prometheus.MustNewConstMetric(intermediateDevicesDesc, prometheus.GaugeValue, float64(u.ActiveDevices), u.Name, u.State)
		}
	}
	ch <- prometheus.MustNewConstMetric(intermediateDevicesDesc, prometheus.GaugeValue, float64(uses.Unattributed), "unattributed", "")
}

// current returns a count no older than intermediateCountEvery of the
// authority's current intermediates, counting again if needed.
func (g *intermediateGauge) current() (IntermediateUses, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keys, now := g.a.Keys(), time.Now()
	if g.keys == keys && now.Sub(g.at) < intermediateCountEvery {
		return g.counted, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), intermediateCountTimeout)
	defer cancel()
	uses, err := CountIntermediateUse(ctx, g.a.store, keys.allDeviceCAs(), g.a.now())
	if err != nil {
		g.a.opts.Logger.Error("counting devices per device intermediate", "err", err)
		g.keys = nil
		return IntermediateUses{}, false
	}
	g.keys, g.at, g.counted = keys, now, uses
	return uses, true
}

// allDeviceCAs is every device intermediate: trusted (the active one
// first), then retired.
func (k *Keys) allDeviceCAs() []DeviceCA {
	return append(append([]DeviceCA(nil), k.DeviceCAs...), k.Retired...)
}
