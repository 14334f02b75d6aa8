// Package metrics defines the policy-runner's Prometheus metrics, so every
// name and label lives in one place (docs/operations/policy-runner.md).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the runner's collectors.
type Metrics struct {
	Registry *prometheus.Registry
	Running  prometheus.GaugeFunc
	Runs     *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// New registers the metrics; running reads the live count of policies.
func New(running func() int64) *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Running: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchyard_policy_running", Help: "Policies running now (one per live call in its policy).",
		}, func() float64 { return float64(running()) }),
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_policy_runs_total", Help: "Finished policy runs by policy and outcome (completed, caller_hung_up, failed) and, for failures, the sandbox limit hit.",
		}, []string{"policy", "outcome", "limit"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_policy_run_seconds", Help: "Policy run time, from call.started taken to the run's end (mostly waiting for the caller).",
			Buckets: []float64{0.01, 0.1, 1, 5, 15, 30, 60, 120, 300, 900, 3600},
		}, []string{"outcome"}),
	}
	r.MustRegister(m.Running, m.Runs, m.Duration)
	return m
}
