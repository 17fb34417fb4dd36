package integration

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// A recover replays every failed delivery of its window once: two overlapping recovers at once
// share the work without replaying any delivery twice, asking again for the same window answers
// the same operation and replays nothing, and the progress is readable in the API and in
// Temporal (search attribute, details).
func TestRecoverReplaysAWindowOnce(t *testing.T) {
	s := newStack(t)
	app := s.newApp("recover")
	var up atomic.Bool
	recv := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		if up.Load() {
			return http.StatusOK, nil, "ok"
		}
		return http.StatusServiceUnavailable, nil, "down"
	})
	t.Cleanup(recv.Close)
	subs := make([]testSub, 2)
	for i := range subs {
		subs[i] = s.subscribe(app.Key, map[string]any{"url": fmt.Sprintf("%s/s%d", recv.URL, i), "eventTypes": []string{"x", "y"},
			"retryPolicy": map[string]any{"initialIntervalMs": 50, "maxAttempts": 1}})
	}
	since := time.Now().Add(-time.Second).UTC()
	for i, typ := range []string{"x", "x", "x", "y"} {
		id := fmt.Sprintf("rec-%d", i)
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": id, "type": typ}), http.StatusCreated)
		s.waitDeliveries(app.Key, id, 2, 30*time.Second)
	}
	until := time.Now().Add(time.Second).UTC()
	failedRequests := recv.Count() // 8
	if failedRequests != 8 {
		t.Fatalf("receiver got %d requests before the recover, want 8", failedRequests)
	}
	// A stranger's subscription is not a filter one may use.
	other := s.newApp("recover stranger")
	s.must(s.call("POST", "/v1/deliveries/recover", other.Key, map[string]any{"since": since, "subscriptionId": subs[0].ID}), http.StatusNotFound)
	s.must(s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": "yesterday"}), http.StatusBadRequest)
	s.must(s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": until, "until": since}), http.StatusBadRequest)

	up.Store(true)
	windows := []map[string]any{
		{"since": since.Format(time.RFC3339Nano), "until": until.Format(time.RFC3339Nano), "eventType": "x"}, // 6 deliveries
		{"since": since.Format(time.RFC3339Nano)},                                                            // all 8, until now
	}
	ids := make([]string, len(windows))
	var wg sync.WaitGroup
	for i, w := range windows {
		wg.Go(func() {
			r, err := s.try("POST", "/v1/deliveries/recover", app.Key, w)
			if err != nil || r.Status != http.StatusAccepted {
				t.Errorf("recover %v: %v %s", w, err, r.Raw)
				return
			}
			ids[i] = r.Data()["id"].(string)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	total := 0
	for _, id := range ids {
		var op map[string]any
		eventually(t, 30*time.Second, "recover "+id+" completed, its replays ended", func() bool {
			op = s.must(s.call("GET", "/v1/operations/"+id, app.Key, nil), http.StatusOK).Data()
			r := op["replays"].(map[string]any)
			return op["status"] == "completed" && r["pending"] == float64(0)
		})
		r := op["replays"].(map[string]any)
		if r["failed"] != float64(0) || r["succeeded"] != r["total"] {
			t.Errorf("operation %s replays %v", id, r)
		}
		total += int(r["total"].(float64))
	}
	if total != 8 {
		t.Errorf("the two recovers replayed %d deliveries, want 8 (each failed one once)", total)
	}
	// Every (event, subscription) got exactly one more request: its replay.
	perTarget := map[string]int{}
	for _, req := range recv.Requests()[failedRequests:] {
		perTarget[req.Header.Get("webhook-id")+" "+req.Path]++
	}
	if len(perTarget) != 8 {
		t.Errorf("replayed targets %v, want 8", perTarget)
	}
	for k, n := range perTarget {
		if n != 1 {
			t.Errorf("%s got %d replays", k, n)
		}
	}

	// The same window again: the same operation, nothing replayed.
	again := s.must(s.call("POST", "/v1/deliveries/recover", app.Key, windows[0]), http.StatusAccepted)
	if again.Data()["id"] != ids[0] || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("asking again answered %s (header %q)", again.Raw, again.Header.Get("Idempotent-Replayed"))
	}
	s.must(s.call("POST", "/v1/operations/"+ids[0]+"/cancel", app.Key, nil), http.StatusConflict)
	s.must(s.call("GET", "/v1/operations/"+ids[0], other.Key, nil), http.StatusNotFound)
	time.Sleep(time.Second)
	if n := recv.Count(); n != failedRequests+8 {
		t.Errorf("receiver got %d requests, want %d", n, failedRequests+8)
	}

	// Operators find it in the Web UI by its status attribute.
	desc, err := temporalClient(t).DescribeWorkflowExecution(context.Background(), "recover/"+ids[0], "")
	if err != nil {
		t.Fatal(err)
	}
	status := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["HookdDeliveryStatus"]
	if status == nil || string(status.GetData()) != `"completed"` {
		t.Errorf("HookdDeliveryStatus = %v", status)
	}
}
