package serve

import (
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics are the service's counters, gauges and the job duration histogram, exposed in the Prometheus
// text format through github.com/VictoriaMetrics/metrics (a small library; prometheus/client_golang would
// bring in far more than a dozen series need). Each Service has its own set.
type Metrics struct {
	set *metrics.Set
}

// durationBuckets are the upper bounds (seconds) of crs_serve_job_duration_seconds.
var durationBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// The series the service exposes (docs/serve.md lists them with their labels).
const (
	metricNotifications   = "crs_serve_notifications_total"    // counter{code}: webhook requests by HTTP answer
	metricEvents          = "crs_serve_events_total"           // counter{outcome}: registry events by what was made of them
	metricFinished        = "crs_serve_jobs_finished_total"    // counter{result}: finished jobs
	metricVerdicts        = "crs_serve_verdicts_total"         // counter{verdict}: compatibility verdicts
	metricAttemptFailures = "crs_serve_attempt_failures_total" // counter{kind}: failed attempts (operational, timeout, other)
	metricJobs            = "crs_serve_jobs"                   // gauge{state}: unfinished jobs (queued, running, retrying)
	metricQueueCapacity   = "crs_serve_queue_capacity"         // gauge: queueSize
	metricReady           = "crs_serve_ready"                  // gauge: 1 while notifications are accepted
	metricDuration        = "crs_serve_job_duration_seconds"   // histogram: wall time of job attempts
)

// NewMetrics returns an empty set.
func NewMetrics() *Metrics {
	metrics.ExposeMetadata(true) // # TYPE lines for every metric
	return &Metrics{set: metrics.NewSet()}
}

// series renders name{label="value",…} from label pairs.
func series(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// Add adds v to a counter.
func (m *Metrics) Add(name string, v float64, kv ...string) {
	m.set.GetOrCreateFloatCounter(series(name, kv...)).Add(v)
}

// Set sets a gauge.
func (m *Metrics) Set(name string, v float64, kv ...string) {
	m.set.GetOrCreateGauge(series(name, kv...), nil).Set(v)
}

// Get returns a counter's or gauge's value (0 when absent).
func (m *Metrics) Get(name string, kv ...string) float64 {
	s := series(name, kv...)
	switch name {
	case metricJobs, metricQueueCapacity, metricReady:
		return m.set.GetOrCreateGauge(s, nil).Get()
	}
	return m.set.GetOrCreateFloatCounter(s).Get()
}

// Observe records one job attempt's duration.
func (m *Metrics) Observe(seconds float64) {
	m.set.GetOrCreatePrometheusHistogramExt(metricDuration, durationBuckets).Update(seconds)
}

// Write writes every series in the Prometheus text exposition format.
func (m *Metrics) Write(w io.Writer) error {
	m.set.WritePrometheus(w)
	return nil
}
