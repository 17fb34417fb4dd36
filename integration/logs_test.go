package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// errorLines returns the ERROR records a stack logged.
func errorLines(logs string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=ERROR") {
			out = append(out, line)
		}
	}
	return out
}

// Receivers failing (500s retried until success, 500s until the attempts run out, a 410) are the
// product working: nothing is logged at ERROR, where the Temporal SDK logged "Activity error." for
// each. hookd's own trouble (its database unreachable during an attempt) still logs ERROR.
func TestReceiverFailuresAreNotErrors(t *testing.T) {
	s, proxy := proxiedStack(t)
	app := s.newApp("quiet")
	flaky := testenv.NewReceiver(testenv.Statuses(500, 500, 200))
	failing := testenv.NewReceiver(testenv.Statuses(500))
	gone := testenv.NewReceiver(testenv.Statuses(500, 410))
	for _, r := range []*testenv.Receiver{flaky, failing, gone} {
		t.Cleanup(r.Close)
		s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"q"},
			"retryPolicy": map[string]any{"initialIntervalMs": 100, "backoffCoefficient": 2, "maxAttempts": 3}})
	}
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "quiet-1", "type": "q"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "quiet-1", 3, 60*time.Second)
	statuses := map[string]int{}
	for _, d := range ds {
		statuses[d["status"].(string)]++
	}
	if statuses["succeeded"] != 1 || statuses["failed"] != 2 {
		t.Fatalf("deliveries ended %v, want 1 succeeded and 2 failed", statuses)
	}
	if flaky.Count() != 3 || failing.Count() != 3 || gone.Count() != 2 {
		t.Fatalf("receivers got %d, %d, %d requests, want 3, 3, 2", flaky.Count(), failing.Count(), gone.Count())
	}
	if lines := errorLines(s.Logs.String()); len(lines) > 0 {
		t.Errorf("receiver failures logged %d ERROR lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}

	// The database goes away while a retry is due: the attempt cannot even be read, an ERROR.
	later := testenv.NewReceiver(testenv.Statuses(500, 200))
	t.Cleanup(later.Close)
	s.subscribe(app.Key, map[string]any{"url": later.URL, "eventTypes": []string{"later"},
		"retryPolicy": map[string]any{"initialIntervalMs": 2000, "maxAttempts": 3}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "quiet-2", "type": "later"}), http.StatusCreated)
	eventually(t, 20*time.Second, "the first attempt in the ledger", func() bool {
		ds := s.eventDeliveries(app.Key, "quiet-2")
		if len(ds) != 1 {
			return false
		}
		ledger, _ := s.delivery(app.Key, ds[0]["id"].(string))["ledger"].([]any)
		return len(ledger) == 1 && ledger[0].(map[string]any)["responseStatus"] == float64(500)
	})
	proxy.Cut()
	eventually(t, 30*time.Second, "an ERROR for the unreachable database", func() bool {
		for _, line := range errorLines(s.Logs.String()) {
			if strings.Contains(line, `msg="Activity error."`) && strings.Contains(line, "ActivityType=Attempt") {
				return true
			}
		}
		return false
	})
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	if ds := s.waitDeliveries(app.Key, "quiet-2", 1, 60*time.Second); ds[0]["status"] != "succeeded" {
		t.Errorf("after the outage the delivery is %v", ds[0]["status"])
	}
}
