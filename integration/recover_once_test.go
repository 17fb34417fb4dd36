package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// A failed delivery is recovered once, however many recovers follow: a recover never replays the
// replays another recover made (they fail again while the receiver is down, and each round would
// POST, e-mail and raise delivery.failed again), and a window reaching into the future is refused
// (it would claim the recover's own replays).
func TestRecoverReplaysAFailureOnce(t *testing.T) {
	s := newStack(t)
	app := s.newApp("recover once")
	recv := testenv.NewReceiver(testenv.Statuses(http.StatusServiceUnavailable))
	t.Cleanup(recv.Close)
	s.subscribe(app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"once"},
		"retryPolicy": map[string]any{"initialIntervalMs": 50, "maxAttempts": 1}})
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	for _, id := range []string{"once-1", "once-2"} {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": id, "type": "once"}), http.StatusCreated)
		s.waitDeliveries(app.Key, id, 1, 30*time.Second)
	}
	if n := recv.Count(); n != 2 {
		t.Fatalf("receiver got %d POSTs before any recover, want 2", n)
	}
	recoverNow := func() map[string]any {
		t.Helper()
		id := s.must(s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": since}), http.StatusAccepted).Data()["id"].(string)
		var op map[string]any
		eventually(t, 30*time.Second, "recover "+id+" completed, its replays ended", func() bool {
			op = s.must(s.call("GET", "/v1/operations/"+id, app.Key, nil), http.StatusOK).Data()
			return op["status"] == "completed" && op["replays"].(map[string]any)["pending"] == float64(0)
		})
		return op
	}
	first := recoverNow()
	if r := first["replays"].(map[string]any); r["total"] != float64(2) || r["failed"] != float64(2) {
		t.Errorf("first recover's replays %v, want 2, both failed (the receiver is still down)", r)
	}
	if n := recv.Count(); n != 4 {
		t.Errorf("after one recover the receiver got %d POSTs, want 4 (each failure replayed once)", n)
	}
	time.Sleep(1100 * time.Millisecond) // a later "now": another window, another operation
	second := recoverNow()
	if second["id"] == first["id"] {
		t.Fatalf("the second recover answered the first operation %v", first["id"])
	}
	if r := second["replays"].(map[string]any); r["total"] != float64(0) {
		t.Errorf("second recover replayed %v: it replayed the first recover's replays", r)
	}
	time.Sleep(time.Second)
	if n := recv.Count(); n != 4 {
		t.Errorf("after two recovers the receiver got %d POSTs, want 4 (one replay per failed delivery)", n)
	}

	// A window that ends in the future is refused; one within clock skew is not.
	far := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	r := s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": since, "until": far})
	if r.Status != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("recover until an hour from now: %d %s, want 400 problem+json", r.Status, r.Raw)
	}
	near := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	s.must(s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": since, "until": near}), http.StatusAccepted)
	time.Sleep(time.Second)
	if n := recv.Count(); n != 4 {
		t.Errorf("after three recovers the receiver got %d POSTs, want 4", n)
	}
}
