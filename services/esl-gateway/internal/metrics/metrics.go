// Package metrics defines the gateway's Prometheus metrics, so every name
// and label lives in one place (docs/operations/esl-gateway.md lists them).
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the gateway's collectors.
type Metrics struct {
	Registry         *prometheus.Registry
	ActiveSessions   prometheus.GaugeFunc
	SessionSetup     prometheus.Histogram
	SessionsRefused  *prometheus.CounterVec
	CommandLatency   *prometheus.HistogramVec
	CommandFailures  *prometheus.CounterVec
	NodeUp           *prometheus.GaugeVec
	NodeRTT          *prometheus.GaugeVec
	EventsPublished  *prometheus.CounterVec
	EventsFailed     *prometheus.CounterVec
	EventsDropped    *prometheus.CounterVec
	EventsPending    prometheus.GaugeFunc
	FramesRejected   *prometheus.CounterVec
	OriginateResults *prometheus.CounterVec
}

// New registers the gateway's metrics; active and pending read live values.
func New(active, pending func() int) *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		ActiveSessions: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchyard_gateway_active_sessions", Help: "Calls handed over by the dialplan and still held.",
		}, func() float64 { return float64(active()) }),
		SessionSetup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_gateway_session_setup_seconds", Help: "From accepting FreeSWITCH's socket to call.started stored in JetStream.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		SessionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_sessions_refused_total", Help: "Socket connections refused or handed back, by reason.",
		}, []string{"reason"}),
		CommandLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_gateway_command_seconds", Help: "callctl commands, by application or operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"app"}),
		CommandFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_command_failures_total", Help: "callctl commands that failed, by application or operation.",
		}, []string{"app"}),
		NodeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_gateway_node_up", Help: "1 while the inbound ESL connection to the node is up.",
		}, []string{"node"}),
		NodeRTT: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_gateway_node_rtt_seconds", Help: "Round trip of the last health api command to the node.",
		}, []string{"node"}),
		EventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_events_published_total", Help: "Events stored in JetStream, by type (duplicate=true when JetStream already had it).",
		}, []string{"type", "duplicate"}),
		EventsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_event_publish_failures_total", Help: "Failed publish attempts (each is retried), by type.",
		}, []string{"type"}),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_events_dropped_total", Help: "Events given up on: over the pending limit, or unflushed at shutdown.",
		}, []string{"type"}),
		EventsPending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchyard_gateway_events_pending", Help: "Events waiting to be stored in JetStream.",
		}, func() float64 { return float64(pending()) }),
		FramesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_esl_frames_rejected_total", Help: "ESL connections closed for a bad frame, by reason.",
		}, []string{"reason"}),
		OriginateResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_gateway_originate_total", Help: "Originate requests by outcome (ok or the FreeSWITCH cause).",
		}, []string{"result"}),
	}
	r.MustRegister(m.ActiveSessions, m.SessionSetup, m.SessionsRefused, m.CommandLatency, m.CommandFailures,
		m.NodeUp, m.NodeRTT, m.EventsPublished, m.EventsFailed, m.EventsDropped, m.EventsPending, m.FramesRejected, m.OriginateResults)
	return m
}

// Command records one callctl command.
func (m *Metrics) Command(app string, d time.Duration, err error) {
	m.CommandLatency.WithLabelValues(app).Observe(d.Seconds())
	if err != nil {
		m.CommandFailures.WithLabelValues(app).Inc()
	}
}
