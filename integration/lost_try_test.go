package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/hookd/hookd/internal/testenv"
)

// lostTry runs a delivery whose one remaining try is lost: its first attempt fails (500), and
// when its retry workflow's attempt starts, PostgreSQL is unreachable, so the try fails before it
// makes an attempt. It returns the stack, the app and the retry workflow's id once the delivery
// ended.
func lostTry(t *testing.T) (*stack, testApp, string) {
	t.Helper()
	s, proxy := proxiedStack(t)
	app := s.newApp("lost try")
	r := testenv.NewReceiver(func(n int, q *http.Request) (int, http.Header, string) {
		if q.Header.Get("webhook-attempt") == "1" {
			return 500, nil, "first attempts fail"
		}
		return 200, nil, "ok"
	})
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"lost"},
		"retryPolicy": map[string]any{"maxAttempts": 2, "initialIntervalMs": 2000}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "lost-1", "type": "lost"}), http.StatusCreated)
	wf := "delivery/" + app.ID + "/lost-1/" + sub.ID
	tc := temporalClient(t)
	eventually(t, 20*time.Second, "the retry workflow", func() bool {
		_, err := tc.DescribeWorkflowExecution(context.Background(), wf, "")
		return err == nil
	})
	// The retry workflow starts 2 s after the first attempt: its one try meets no database.
	proxy.Cut()
	time.Sleep(5 * time.Second)
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the delivery ended", func() bool {
		d, err := tc.DescribeWorkflowExecution(context.Background(), wf, "")
		return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
	})
	return s, app, wf
}

// A try that fails before making its attempt (here: no database) does not cost the delivery its
// last attempt: a new series makes it, and the delivery succeeds with two attempts in the ledger.
func TestLostTryDoesNotEndTheDelivery(t *testing.T) {
	s, app, wf := lostTry(t)
	ds := s.eventDeliveries(app.Key, "lost-1")
	if len(ds) != 1 || ds[0]["status"] != "succeeded" || ds[0]["attempts"] != 2.0 {
		t.Fatalf("delivery %v", ds)
	}
	ledger := s.delivery(app.Key, ds[0]["id"].(string))["ledger"].([]any)
	if len(ledger) != 2 || ledger[1].(map[string]any)["responseStatus"] != 200.0 {
		t.Errorf("ledger %v", ledger)
	}
	if !hasVersionMarker(t, wf, "lost-tries-continue") {
		t.Error("the history has no lost-tries-continue version marker: the branch did not run")
	}
}

// hasVersionMarker reports whether a workflow's history records workflow.GetVersion for changeID.
func hasVersionMarker(t *testing.T, workflowID, changeID string) bool {
	t.Helper()
	it := temporalClient(t).GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		m := e.GetMarkerRecordedEventAttributes()
		if m == nil || m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["change-id"], &id); err == nil && id == changeID {
			return true
		}
	}
	return false
}
