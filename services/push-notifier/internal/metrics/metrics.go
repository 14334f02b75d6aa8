// Package metrics defines the push-notifier's Prometheus metrics
// (docs/operations/push-notifier.md).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the notifier's collectors.
type Metrics struct {
	Registry      *prometheus.Registry
	Requests      *prometheus.CounterVec
	Attempts      *prometheus.CounterVec
	AttemptTime   *prometheus.HistogramVec
	Delivery      *prometheus.HistogramVec
	TokensRemoved *prometheus.CounterVec
	DeadLetters   *prometheus.CounterVec
	InFlight      prometheus.Gauge
}

// New registers the metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_push_requests_total", Help: "push.requested handled, by outcome: delivered (at least one device), failed, duplicate (already handled), no_devices, rate_limited, expired, invalid.",
		}, []string{"outcome"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_push_attempts_total", Help: "Sends to a provider, by provider (apns, fcm) and verdict (delivered, retry, refresh_auth, token_dead, rejected, in_doubt).",
		}, []string{"provider", "verdict"}),
		AttemptTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_push_attempt_seconds", Help: "One send to a provider, request to answer.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5},
		}, []string{"provider"}),
		Delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_push_delivery_seconds", Help: "From push.requested's time to the provider's acceptance.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30},
		}, []string{"provider"}),
		TokensRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_push_tokens_removed_total", Help: "Device tokens forgotten because the provider said they are dead, by provider and reason.",
		}, []string{"provider", "reason"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_push_deadletters_total", Help: "Requests sent to push.<user>.deadletter, by reason.",
		}, []string{"reason"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_push_in_flight", Help: "push.requested being handled now."}),
	}
	r.MustRegister(m.Requests, m.Attempts, m.AttemptTime, m.Delivery, m.TokensRemoved, m.DeadLetters, m.InFlight)
	return m
}
