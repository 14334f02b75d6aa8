// Package metrics defines the connector-proxy's Prometheus metrics
// (docs/operations/connector-proxy.md). Labels are bounded: connector type,
// op and outcome; the only per-org series is the breaker gauge, which
// exists only while an org's breaker is not closed.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the proxy's collectors.
type Metrics struct {
	Registry         *prometheus.Registry
	Requests         *prometheus.CounterVec
	Duration         *prometheus.HistogramVec
	Upstream         *prometheus.CounterVec
	UpstreamDuration *prometheus.HistogramVec
	Retries          *prometheus.CounterVec
	Coalesced        prometheus.Counter
	CacheInvalidated prometheus.Counter
	Tokens           *prometheus.CounterVec
	BreakerChanges   *prometheus.CounterVec
	BreakerOpen      *prometheus.GaugeVec
	InFlight         prometheus.Gauge
}

// New registers the metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fast := []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cp_requests_total",
			Help: "Requests answered, by connector type, op and outcome (ok, cached, stale, timeout, breaker_open, bulkhead_full, upstream_error, invalid, not_found, unavailable).",
		}, []string{"type", "op", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_cp_request_seconds", Help: "From a request's arrival to its answer, by connector type and outcome.", Buckets: fast,
		}, []string{"type", "outcome"}),
		Upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cp_upstream_calls_total", Help: "Calls to upstreams (each retry counts), by connector type and result (ok or the error code).",
		}, []string{"type", "result"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_cp_upstream_seconds", Help: "Upstream call time (pagination and a token refresh included), by connector type.", Buckets: fast,
		}, []string{"type"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cp_retries_total", Help: "Reads sent again after a transient upstream failure, by connector type.",
		}, []string{"type"}),
		Coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_cp_coalesced_total", Help: "Reads that joined an identical read already on its way upstream instead of making their own call.",
		}),
		CacheInvalidated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_cp_cache_invalidated_total", Help: "Cached reads dropped because a write through the proxy (here or on another instance) named what they read.",
		}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cp_token_requests_total", Help: "Salesforce OAuth token requests by grant (client_credentials, jwt_bearer), and refreshes after 401 (refresh).",
		}, []string{"grant"}),
		BreakerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cp_breaker_transitions_total", Help: "Circuit breaker state changes, by the state entered (open, half-open, closed).",
		}, []string{"to"}),
		BreakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_cp_breaker_not_closed", Help: "1 while an org's connector breaker is open (state=open) or probing (state=half-open); absent while closed.",
		}, []string{"org", "connector", "state"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_cp_upstream_in_flight", Help: "Upstream calls in flight (all orgs).",
		}),
	}
	r.MustRegister(m.Requests, m.Duration, m.Upstream, m.UpstreamDuration, m.Retries, m.Coalesced, m.CacheInvalidated, m.Tokens, m.BreakerChanges, m.BreakerOpen, m.InFlight)
	return m
}
