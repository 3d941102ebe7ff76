package serve

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Metrics are the service's counters, written in the Prometheus text exposition format (version 0.0.4) by
// hand: a dozen series do not justify prometheus/client_golang and its dependencies.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]map[string]float64 // metric name → label string → value
	hist     histogram
}

// durationBuckets are the upper bounds (seconds) of crs_serve_job_duration_seconds.
var durationBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

type histogram struct {
	counts []uint64 // per bucket (not cumulative), plus +Inf at the end
	sum    float64
	n      uint64
}

type metricInfo struct {
	help, kind string
}

var metricHelp = map[string]metricInfo{
	"crs_serve_notifications_total":    {"Notification requests received, by HTTP answer.", "counter"},
	"crs_serve_events_total":           {"Registry events received, by what was made of them.", "counter"},
	"crs_serve_jobs_finished_total":    {"Jobs finished, by result.", "counter"},
	"crs_serve_verdicts_total":         {"Compatibility verdicts of jobs that checked an image.", "counter"},
	"crs_serve_attempt_failures_total": {"Job attempts that failed, by kind (operational, timeout, other).", "counter"},
	"crs_serve_jobs":                   {"Jobs not finished, by state.", "gauge"},
	"crs_serve_queue_capacity":         {"Jobs that may wait to run; beyond it notifications get 503.", "gauge"},
	"crs_serve_ready":                  {"1 when the service accepts notifications.", "gauge"},
	"crs_serve_job_duration_seconds":   {"Wall time of job attempts.", "histogram"},
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]map[string]float64{},
		hist: histogram{counts: make([]uint64, len(durationBuckets)+1)}}
}

// labels renders label pairs (name, value, name, value…) in the exposition syntax.
func labels(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
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
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.counters[name]
	if s == nil {
		s = map[string]float64{}
		m.counters[name] = s
	}
	s[labels(kv...)] += v
}

// Set sets a gauge.
func (m *Metrics) Set(name string, v float64, kv ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.counters[name]
	if s == nil {
		s = map[string]float64{}
		m.counters[name] = s
	}
	s[labels(kv...)] = v
}

// Get returns a series' value (0 when absent).
func (m *Metrics) Get(name string, kv ...string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counters[name][labels(kv...)]
}

// Observe records one job attempt's duration.
func (m *Metrics) Observe(seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.SearchFloat64s(durationBuckets, seconds) // first bucket with bound ≥ seconds
	m.hist.counts[i]++
	m.hist.sum += seconds
	m.hist.n++
}

// Write writes every metric in the text exposition format, metrics and series sorted.
func (m *Metrics) Write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	names := make([]string, 0, len(metricHelp))
	for n := range metricHelp {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		info := metricHelp[name]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, info.help, name, info.kind)
		if info.kind == "histogram" {
			var cum uint64
			for i, le := range durationBuckets {
				cum += m.hist.counts[i]
				fmt.Fprintf(&b, "%s_bucket{le=%q} %d\n", name, strconv.FormatFloat(le, 'g', -1, 64), cum)
			}
			cum += m.hist.counts[len(durationBuckets)]
			fmt.Fprintf(&b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, cum, name,
				strconv.FormatFloat(m.hist.sum, 'g', -1, 64), name, m.hist.n)
			continue
		}
		series := m.counters[name]
		keys := make([]string, 0, len(series))
		for k := range series {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s%s %s\n", name, k, strconv.FormatFloat(series[k], 'g', -1, 64))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
