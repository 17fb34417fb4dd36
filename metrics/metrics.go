// Package metrics holds hookd's Prometheus metrics and bridges the Temporal SDK's own metrics into
// the same registry, served at /metrics.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Metrics is one process's set of metrics. Its zero value is not usable; use New.
type Metrics struct {
	Registry *prometheus.Registry

	EventsAccepted  *prometheus.CounterVec // by kind: event, callback
	Deliveries      *prometheus.CounterVec // by outcome: succeeded, failed, cancelled
	Attempts        *prometheus.CounterVec // by status class: 2xx … 5xx, error
	AttemptLatency  prometheus.Histogram
	TimeToDelivered prometheus.Histogram // event received → a delivery's success
}

// New registers hookd's metrics (and Go runtime and process metrics) in a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		EventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_events_accepted_total", Help: "Events and one-off callbacks accepted by the API.",
		}, []string{"kind"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_deliveries_total", Help: "Deliveries that ended, by outcome.",
		}, []string{"outcome"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_delivery_attempts_total", Help: "HTTP attempts, by response status class (error: no response).",
		}, []string{"class"}),
		AttemptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookd_delivery_attempt_duration_seconds", Help: "Duration of one HTTP attempt.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		TimeToDelivered: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookd_event_to_delivery_seconds", Help: "Time from an event's arrival to a successful delivery of it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 20),
		}),
	}
	reg.MustRegister(m.EventsAccepted, m.Deliveries, m.Attempts, m.AttemptLatency, m.TimeToDelivered,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveAttempt records one HTTP attempt; status 0 means no response.
func (m *Metrics) ObserveAttempt(status int, d time.Duration) {
	if m == nil {
		return
	}
	class := "error"
	if status > 0 {
		class = strconv.Itoa(status/100) + "xx"
	}
	m.Attempts.WithLabelValues(class).Inc()
	m.AttemptLatency.Observe(d.Seconds())
}

// ObserveDelivered records a delivery that ended; received is when its event arrived.
func (m *Metrics) ObserveDelivered(outcome string, received time.Time) {
	if m == nil {
		return
	}
	m.Deliveries.WithLabelValues(outcome).Inc()
	if outcome == "succeeded" && !received.IsZero() {
		m.TimeToDelivered.Observe(time.Since(received).Seconds())
	}
}

// AcceptedEvent counts an event the API took.
func (m *Metrics) AcceptedEvent(kind string) {
	if m != nil {
		m.EventsAccepted.WithLabelValues(kind).Inc()
	}
}

// TemporalHandler exports the Temporal SDK's client and worker metrics (task latencies, slots,
// sticky cache, workflows completed …) into the same registry.
func (m *Metrics) TemporalHandler() client.MetricsHandler {
	// NewReporter rather than Configuration.NewReporter: the latter also mounts /metrics on
	// http.DefaultServeMux, a global a second instance (or a test) collides with.
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       m.Registry,
		DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError:  func(error) {}, // a clash with our own names must not take the process down
	})
	scope, _ := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
