package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/workflows"
)

// TestRecordHistories records real histories of every workflow type into workflows/testdata, for
// the history replay tests (workflows/histories_test.go) that keep deploys safe. It runs only when asked:
//
//	HOOKD_RECORD_HISTORIES=v8 make test GOTESTFLAGS='-run TestRecordHistories ./integration'
//
// The value names the code version; files are <type>-<scenario>-<version>.json. Record new ones
// whenever a workflow's commands change, and keep the old ones: they are what running workflows
// of the previous release look like.
func TestRecordHistories(t *testing.T) {
	version := os.Getenv("HOOKD_RECORD_HISTORIES")
	if version == "" {
		t.Skip("set HOOKD_RECORD_HISTORIES=<version> to record workflow histories")
	}
	dir, err := filepath.Abs(filepath.Join("..", "workflows", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tc := temporalClient(t)
	save := func(scenario, workflowID string) {
		t.Helper()
		eventually(t, 60*time.Second, "workflow "+workflowID+" closed", func() bool {
			d, err := tc.DescribeWorkflowExecution(context.Background(), workflowID, "")
			return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
		})
		writeHistory(t, tc, workflowID, filepath.Join(dir, fmt.Sprintf("%s-%s.json", scenario, version)))
	}

	start := time.Now().Add(-time.Second)
	s := newStack(t, func(c *config.Config) {
		c.Retry.MaxAttempts = 3
		c.Retry.InitialInterval = 200 * time.Millisecond
	})
	app := s.newApp("histories")
	ok := testenv.NewReceiver(nil)
	t.Cleanup(ok.Close)
	flaky := testenv.NewReceiver(func(n int, q *http.Request) (int, http.Header, string) {
		if q.Header.Get("webhook-attempt") == "1" {
			return 503, http.Header{"Retry-After": {"1"}}, "busy"
		}
		return 200, nil, "ok"
	})
	t.Cleanup(flaky.Close)
	down := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "down" })
	t.Cleanup(down.Close)
	done := testenv.NewReceiver(nil)
	t.Cleanup(done.Close)

	s.subscribe(app.Key, map[string]any{"url": ok.URL, "eventTypes": []string{"h.ok"}})
	flakySub := s.subscribe(app.Key, map[string]any{"url": flaky.URL, "eventTypes": []string{"h.mixed"}})
	downSub := s.subscribe(app.Key, map[string]any{"url": down.URL, "eventTypes": []string{"h.mixed"},
		"retryPolicy": map[string]any{"maxAttempts": 2, "initialIntervalMs": 100}})
	slowSub := s.subscribe(app.Key, map[string]any{"url": down.URL, "eventTypes": []string{"h.slow"},
		"retryPolicy": map[string]any{"initialIntervalMs": 60000, "maxDurationMs": 3600000}})

	// An event whose every first attempt succeeds: the fan-out alone.
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "h-ok", "type": "h.ok", "data": map[string]any{"n": 1}}), http.StatusCreated)
	save("event-succeeded", "event/"+app.ID+"/h-ok")

	// An event with a completion callback: one delivery succeeds on its retry, one fails for good.
	s.must(s.call("POST", "/v1/events?callbackURL="+done.URL, app.Key, map[string]any{"id": "h-mixed", "type": "h.mixed"}), http.StatusAccepted)
	save("event-retries-callback", "event/"+app.ID+"/h-mixed")
	save("delivery-recovered", "delivery/"+app.ID+"/h-mixed/"+flakySub.ID)
	save("delivery-failed", "delivery/"+app.ID+"/h-mixed/"+downSub.ID)
	save("callback-event", "event/"+app.ID+"/cb_h-mixed")

	// Deliveries in a long backoff, retried and then cancelled by an operator.
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "h-slow", "type": "h.slow"}), http.StatusCreated)
	var slowID string
	eventually(t, 30*time.Second, "slow delivery retrying", func() bool {
		ds := s.eventDeliveries(app.Key, "h-slow")
		if len(ds) == 1 && ds[0]["attempts"].(float64) >= 1 {
			slowID = ds[0]["id"].(string)
			return true
		}
		return false
	})
	wf := "delivery/" + app.ID + "/h-slow/" + slowSub.ID
	eventually(t, 30*time.Second, "retry accepted", func() bool {
		return s.call("POST", "/v1/deliveries/"+slowID+"/retry", app.Key, nil).Status == http.StatusAccepted
	})
	eventually(t, 30*time.Second, "second attempt", func() bool { return s.delivery(app.Key, slowID)["attempts"].(float64) >= 2 })
	s.must(s.call("POST", "/v1/deliveries/"+slowID+"/cancel", app.Key, map[string]any{"reason": "recording"}), http.StatusAccepted)
	save("delivery-retried-cancelled", wf)

	// A replay of a whole event with a completion callback.
	r := s.must(s.call("POST", "/v1/events/h-mixed/replay", app.Key, map[string]any{"callbackUrl": done.URL}), http.StatusAccepted).Data()
	save("replay-event", "replay/"+app.ID+"/h-mixed/"+r["requestId"].(string))

	// A rate-limited subscription (one delivery per 10 s) whose first attempt fails: its retry
	// finds the next slot 10 s away, is told Throttled, waits for it and succeeds (throttle-wait).
	var once atomic.Bool
	limited := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		if once.CompareAndSwap(false, true) {
			return 500, nil, "not yet"
		}
		return 200, nil, "ok"
	})
	t.Cleanup(limited.Close)
	limitedSub := s.subscribe(app.Key, map[string]any{"url": limited.URL, "eventTypes": []string{"h.limited"}, "rateLimit": 0.1,
		"retryPolicy": map[string]any{"initialIntervalMs": 100, "maxAttempts": 3}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "h-limited", "type": "h.limited"}), http.StatusCreated)
	save("delivery-throttled", "delivery/"+app.ID+"/h-limited/"+limitedSub.ID)

	// A subscription with maxInFlight 1 whose one send is slow: the next event's delivery finds it
	// full, is told Throttled with no slot to wait for, and polls (throttle-poll-wait) until the
	// send ends.
	slow := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			time.Sleep(4 * time.Second)
		}
		return 200, nil, "ok"
	})
	t.Cleanup(slow.Close)
	pollSub := s.subscribe(app.Key, map[string]any{"url": slow.URL, "eventTypes": []string{"h.poll"}, "maxInFlight": 1})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "h-poll-a", "type": "h.poll"}), http.StatusCreated)
	eventually(t, 30*time.Second, "the slow send under way", func() bool { return len(slow.Requests()) == 1 })
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "h-poll-b", "type": "h.poll"}), http.StatusCreated)
	save("delivery-throttle-poll", "delivery/"+app.ID+"/h-poll-b/"+pollSub.ID)

	// A recover of the app's failed deliveries (h-mixed's to the receiver that is down).
	op := s.must(s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": start.UTC().Format(time.RFC3339Nano)}),
		http.StatusAccepted).Data()
	save("recover", op["workflowId"].(string))

	// A registered event removed while a subscriber's delivery to it retries.
	tn := newTenants(s, "histories")
	tn.pendingDelivery(s, "h-removed")
	s.must(s.call("POST", "/v1/topics/participant/events/bulk-delete", tn.pub.Key,
		map[string]any{"events": []string{"usercreated"}}), http.StatusOK)
	var removed int64
	if err := database.DB.Get(&removed, `SELECT id FROM registered_events WHERE app_id = $1 AND name = 'usercreated'`, tn.pub.ID); err != nil {
		t.Fatal(err)
	}
	save("registry-removal", workflows.RemovedEventWorkflowID(removed))

	// A retention run (the Schedule starts the same workflow every HOOKD_RETENTION_EVERY).
	if _, err := tc.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "retention/histories",
		TaskQueue: s.Cfg.TaskQueue}, workflows.RetentionWorkflow); err != nil {
		t.Fatal(err)
	}
	save("retention", "retention/histories")

	// A delivery whose one remaining try met no database and went on (lost-tries-continue).
	_, _, lostWF := lostTry(t)
	save("delivery-lost-try", lostWF)

	// The fan-out as a regular activity (HOOKD_FANOUT_MODE=activity).
	s2 := newStack(t, func(c *config.Config) { c.LocalFanOut = false })
	app2 := s2.newApp("histories activity")
	s2.subscribe(app2.Key, map[string]any{"url": ok.URL, "eventTypes": []string{"h.ok"}})
	s2.must(s2.call("POST", "/v1/events", app2.Key, map[string]any{"id": "h-act", "type": "h.ok"}), http.StatusCreated)
	save("event-activity-fanout", "event/"+app2.ID+"/h-act")
}

// writeHistory saves a workflow's history in the JSON form the replayer reads.
func writeHistory(t *testing.T, c client.Client, workflowID, path string) {
	t.Helper()
	iter := c.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	h := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	out, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events) to %s", workflowID, len(h.Events), strings.TrimPrefix(path, filepath.Dir(filepath.Dir(path))+"/"))
}
