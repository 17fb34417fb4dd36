package integration

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/service"
)

// metricValue reads one sample from the Prometheus text format ("" labels for none).
func metricValue(t *testing.T, text, name, labels string) float64 {
	t.Helper()
	sel := regexp.QuoteMeta(name)
	if labels != "" {
		sel += regexp.QuoteMeta("{" + labels + "}")
	}
	m := regexp.MustCompile(`(?m)^` + sel + ` ([0-9.e+-]+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("metric %s{%s} not found", name, labels)
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetrics(t *testing.T) {
	s := newStack(t)
	app := s.newApp("metered")
	ok := testenv.NewReceiver(nil)
	flaky := testenv.NewReceiver(testenv.Statuses(500, 200))
	t.Cleanup(ok.Close)
	t.Cleanup(flaky.Close)
	s.subscribe(app.Key, map[string]any{"url": ok.URL, "eventTypes": []string{"m"}})
	s.subscribe(app.Key, map[string]any{"url": flaky.URL, "eventTypes": []string{"m"}, "retryPolicy": map[string]any{"initialIntervalMs": 50}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "m-1", "type": "m"}), http.StatusCreated)
	s.waitDeliveries(app.Key, "m-1", 2, 20*time.Second)
	var text string
	eventually(t, 10*time.Second, "metrics", func() bool {
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		text = string(b)
		// The SDK's metrics reach the registry on tally's 1 s reporting tick.
		return strings.Contains(text, `hookd_deliveries_total{outcome="succeeded"} 2`) && strings.Contains(text, "temporal_workflow_completed")
	})
	want := map[[2]string]float64{
		{"hookd_events_accepted_total", `kind="event"`}:       1,
		{"hookd_delivery_attempts_total", `class="2xx"`}:      2,
		{"hookd_delivery_attempts_total", `class="5xx"`}:      1,
		{"hookd_deliveries_total", `outcome="succeeded"`}:     2,
		{"hookd_delivery_attempt_duration_seconds_count", ""}: 3,
		{"hookd_event_to_delivery_seconds_count", ""}:         2,
	}
	for k, v := range want {
		if got := metricValue(t, text, k[0], k[1]); got != v {
			t.Errorf("%s{%s} = %v, want %v", k[0], k[1], got, v)
		}
	}
	for _, name := range []string{"hookd_workflows_running", "temporal_workflow_completed", "temporal_activity_execution_latency", "go_goroutines"} {
		if !strings.Contains(text, name) {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

// A worker-only process serves its metrics at HOOKD_METRICS_ADDR.
func TestWorkerOnlyMetrics(t *testing.T) {
	api := startStack(t, false)
	app := api.newApp("workermetrics")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	api.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"w"}})
	cfg := api.Cfg
	cfg.MetricsAddr = "127.0.0.1:0"
	w, err := service.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	if w.URL != "" || w.MetricsURL == "" {
		t.Fatalf("worker-only process: URL %q, MetricsURL %q", w.URL, w.MetricsURL)
	}
	api.must(api.call("POST", "/v1/events", app.Key, map[string]any{"id": "wm-1", "type": "w"}), http.StatusCreated)
	api.waitDeliveries(app.Key, "wm-1", 1, 20*time.Second)
	eventually(t, 10*time.Second, "worker metrics", func() bool {
		resp, err := http.Get(w.MetricsURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `hookd_delivery_attempts_total{class="2xx"} 1`)
	})
}
