// Package metrics defines the queue-distributor's Prometheus metrics
// (docs/operations/queue-distributor.md).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the distributor's collectors.
type Metrics struct {
	Registry     *prometheus.Registry
	Applied      *prometheus.CounterVec
	OfferLatency prometheus.Histogram
}

// New registers the metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_qd_events_applied_total", Help: "Events the follower applied to the projection, by stream and result (applied, dup, ignored; malformed: recorded, data not applied; bad: on no aggregate subject, skipped).",
		}, []string{"stream", "result"}),
		OfferLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_qd_offer_seconds", Help: "From the change that made an offer possible (agent ready, caller joined) to the originate sent to the gateway.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1},
		}),
	}
	r.MustRegister(m.Applied, m.OfferLatency)
	return m
}
