package integration

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/workflows"
)

// A delivery that gave up is a Failed workflow in the Web UI's list, with the reason; one that
// succeeded after retries is Completed. Its input shows the retry policy's durations as "100ms",
// not nanoseconds.
func TestFailedDeliveryIsAFailedWorkflow(t *testing.T) {
	s := newStack(t)
	app := s.newApp("web ui truth")
	down := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "down for maintenance" })
	t.Cleanup(down.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": down.URL, "eventTypes": []string{"t.fail"},
		"retryPolicy": map[string]any{"initialIntervalMs": 100, "maxAttempts": 3}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "truth-1", "type": "t.fail"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "truth-1", 1, 30*time.Second)
	if ds[0]["status"] != "failed" || ds[0]["attempts"] != float64(3) {
		t.Fatalf("delivery %v", ds[0])
	}
	wf := "delivery/" + app.ID + "/truth-1/" + sub.ID
	tc := temporalClient(t)
	ctx := context.Background()
	eventually(t, 10*time.Second, "the workflow closed", func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, wf, "")
		return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
	})
	d, _ := tc.DescribeWorkflowExecution(ctx, wf, "")
	if st := d.WorkflowExecutionInfo.Status; st != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
		t.Errorf("workflow status %s, want Failed", st)
	}
	err := tc.GetWorkflow(ctx, wf, "").Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeGaveUp || !appErr.NonRetryable() ||
		!strings.HasPrefix(appErr.Message(), "gave up after 3 attempts; the last: ") || !strings.Contains(appErr.Message(), "500") {
		t.Errorf("workflow failure %v", err)
	}
	res, err := workflows.ResultOf(err, nil)
	if err != nil || res.Status != "failed" || res.Attempts != 3 || res.Reason == "" {
		t.Errorf("result in the failure %+v, %v", res, err)
	}
	// The Web UI's list query finds it among the failed workflows.
	eventually(t, 10*time.Second, "listed as Failed", func() bool {
		r, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "ExecutionStatus = 'Failed' AND WorkflowId = '" + wf + "'"})
		return err == nil && len(r.Executions) == 1
	})
	// The input reads as an operator writes durations.
	it := tc.GetWorkflowHistory(ctx, wf, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	input := string(first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0].GetData())
	if !strings.Contains(input, `"InitialInterval":"100ms"`) || !strings.Contains(input, `"Timeout":"`) {
		t.Errorf("input %s", input)
	}
}

// links.temporalUi and workflowId name the workflow a delivery runs in: its own DeliveryWorkflow
// while it waits for its second attempt (when an operator would signal it) and for a replay; the
// event's workflow, and no workflowId, when its first attempt succeeded there.
func TestDeliveryLinksNameItsWorkflow(t *testing.T) {
	s := newStack(t)
	app := s.newApp("links")
	ok := testenv.NewReceiver(nil)
	t.Cleanup(ok.Close)
	slow := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 503, nil, "busy"
		}
		return 200, nil, "ok"
	})
	t.Cleanup(slow.Close)
	okSub := s.subscribe(app.Key, map[string]any{"url": ok.URL, "eventTypes": []string{"t.links"}})
	slowSub := s.subscribe(app.Key, map[string]any{"url": slow.URL, "eventTypes": []string{"t.links"},
		"retryPolicy": map[string]any{"initialIntervalMs": 600000, "maxAttempts": 3}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "links-1", "type": "t.links"}), http.StatusCreated)
	eventWF := "event/" + app.ID + "/links-1"
	bySub := map[string]map[string]any{}
	eventually(t, 30*time.Second, "first attempts made", func() bool {
		for _, d := range s.eventDeliveries(app.Key, "links-1") {
			// Wait for the first attempts' outcomes: the ledger row (and the count) come before the POST.
			if d["attempts"] == float64(1) && (d["status"] == "succeeded" || d["lastStatus"] != nil) {
				bySub[d["subscriptionId"].(string)] = d
			}
		}
		return len(bySub) == 2
	})
	tc := temporalClient(t)
	exists := func(wf string) bool {
		_, err := tc.DescribeWorkflowExecution(context.Background(), wf, "")
		return err == nil
	}
	linkOf := func(d map[string]any) string {
		l := d["links"].(map[string]any)["temporalUi"].(string)
		return l[strings.LastIndex(l, "/workflows/")+len("/workflows/"):]
	}
	check := func(name string, d map[string]any, wantWF string, ownWF bool) {
		t.Helper()
		if got := linkOf(d); got != url.PathEscape(wantWF) {
			t.Errorf("%s: link to %s, want %s", name, got, wantWF)
		}
		wfID, has := d["workflowId"].(string)
		if has != ownWF || has && wfID != wantWF {
			t.Errorf("%s: workflowId %q", name, wfID)
		}
		if !exists(wantWF) {
			t.Errorf("%s: workflow %s does not exist", name, wantWF)
		}
	}
	okD := s.delivery(app.Key, bySub[okSub.ID]["id"].(string))
	check("succeeded at once (GET /v1/deliveries/{id})", okD, eventWF, false)
	check("succeeded at once (the event's list)", bySub[okSub.ID], eventWF, false)
	if exists("delivery/" + app.ID + "/links-1/" + okSub.ID) {
		t.Error("a delivery workflow exists for the delivery that succeeded at once")
	}
	slowID := bySub[slowSub.ID]["id"].(string)
	slowWF := "delivery/" + app.ID + "/links-1/" + slowSub.ID
	eventually(t, 10*time.Second, "the retry workflow started", func() bool { return exists(slowWF) })
	check("waiting for its second attempt", s.delivery(app.Key, slowID), slowWF, true)
	check("waiting for its second attempt (the event's list)", bySub[slowSub.ID], slowWF, true)

	// A replay of the delivery that succeeded at once runs in a workflow of its own.
	r := s.must(s.call("POST", "/v1/deliveries/"+okD["id"].(string)+"/replay", app.Key, nil), http.StatusAccepted).Data()
	replayID := r["id"].(string)
	eventually(t, 30*time.Second, "the replay succeeded", func() bool { return s.delivery(app.Key, replayID)["status"] == "succeeded" })
	check("a replay that succeeded at once", s.delivery(app.Key, replayID), "delivery/"+app.ID+"/links-1/"+okSub.ID+"/replay-1", true)
}

// The Web UI's Reset of a delivery's workflow that ended re-runs the workflow from its start: the
// Attempt activity finds the delivery ended and sends nothing. The reset run fails again saying so
// and pointing at replay; the ledger and the receiver are unchanged.
func TestResetOfAnEndedDeliveryIsRefused(t *testing.T) {
	s := newStack(t)
	app := s.newApp("reset")
	down := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "down" })
	t.Cleanup(down.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": down.URL, "eventTypes": []string{"t.reset"},
		"retryPolicy": map[string]any{"initialIntervalMs": 100, "maxAttempts": 2}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "reset-1", "type": "t.reset"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "reset-1", 1, 30*time.Second)
	if ds[0]["status"] != "failed" {
		t.Fatalf("delivery %v", ds[0])
	}
	id := ds[0]["id"].(string)
	wf := "delivery/" + app.ID + "/reset-1/" + sub.ID
	tc := temporalClient(t)
	ctx := context.Background()
	eventually(t, 10*time.Second, "the workflow closed", func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, wf, "")
		return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
	})
	before := s.delivery(app.Key, id)
	posts := down.Count()
	d, _ := tc.DescribeWorkflowExecution(ctx, wf, "")
	oldRun := d.WorkflowExecutionInfo.Execution.RunId
	// What the Web UI's Reset does with "first workflow task": reset to the end of the first
	// completed workflow task (event 4: started, task scheduled, started, completed).
	reset, err := tc.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace: s.Cfg.TemporalNamespace, WorkflowExecution: d.WorkflowExecutionInfo.Execution, Reason: "operator pressed Reset",
		WorkflowTaskFinishEventId: 4, RequestId: "reset-test-" + oldRun})
	if err != nil {
		t.Fatal(err)
	}
	newRun := reset.GetRunId()
	var runErr error
	eventually(t, 30*time.Second, "the reset run ended", func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, wf, newRun)
		if err != nil || d.WorkflowExecutionInfo.CloseTime == nil {
			return false
		}
		runErr = tc.GetWorkflow(ctx, wf, newRun).Get(ctx, nil)
		return true
	})
	var appErr *temporal.ApplicationError
	if !errors.As(runErr, &appErr) || appErr.Type() != workflows.ErrTypeGaveUp ||
		!strings.Contains(appErr.Message(), "had already ended failed") || !strings.Contains(appErr.Message(), "/v1/deliveries/"+id+"/replay") {
		t.Errorf("reset run ended with %v", runErr)
	}
	time.Sleep(500 * time.Millisecond) // a POST after the reset would be a bug
	after := s.delivery(app.Key, id)
	if down.Count() != posts || len(after["ledger"].([]any)) != len(before["ledger"].([]any)) || after["status"] != "failed" ||
		after["attempts"] != before["attempts"] {
		t.Errorf("after the reset: %d POSTs (before %d), ledger %d rows (before %d), status %v, attempts %v",
			down.Count(), posts, len(after["ledger"].([]any)), len(before["ledger"].([]any)), after["status"], after["attempts"])
	}
	if n := len(s.SMTP.Messages()); n > 1 {
		t.Errorf("%d failure e-mails, want at most the one of the original run", n)
	}
}
