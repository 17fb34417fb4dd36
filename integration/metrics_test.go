package integration

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
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
