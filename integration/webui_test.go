package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookd/hookd/internal/testenv"
)

// An operator reads a delivery in the Web UI without decoding payloads: the event's workflow says
// what the event is and, as it runs, how its deliveries stand; a delivery's workflow says where it
// goes and how it retries; its Attempt activity and its wait say what they are. Read back here the
// way the Web UI reads them: DescribeWorkflowExecution, the workflow's metadata query, history.
func TestWebUIReadsAsAStory(t *testing.T) {
	s := newStack(t)
	app := s.newApp("web ui")
	// 503 with Retry-After 11 s (past the 10 s a start delay takes: a timer), then 500, then 200.
	r := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
		switch n {
		case 1:
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"11"}}, "busy"
		case 2:
			return http.StatusInternalServerError, nil, "oops"
		}
		return http.StatusOK, nil, "ok"
	})
	t.Cleanup(r.Close)
	host := strings.TrimPrefix(r.URL, "http://")
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL + "/hooks/secret-path?token=abc", "eventTypes": []string{"order.created"},
		"retryPolicy": map[string]any{"initialIntervalMs": 100, "backoffCoefficient": 2, "maxIntervalMs": 20000, "maxAttempts": 5}})
	ev := s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "ui-1", "type": "order.created", "topic": "",
		"data": map[string]any{"orderId": 7}}), http.StatusCreated).Data()
	eventWF := ev["workflowId"].(string)

	tc := temporalClient(t)
	ctx := context.Background()
	var deliveryID, deliveryWF string
	eventually(t, 30*time.Second, "the delivery's workflow waiting out Retry-After", func() bool {
		ds := s.eventDeliveries(app.Key, "ui-1")
		if len(ds) != 1 || ds[0]["attempts"] != float64(1) {
			return false
		}
		deliveryID = ds[0]["id"].(string)
		deliveryWF = ds[0]["workflowId"].(string)
		_, err := tc.DescribeWorkflowExecution(ctx, deliveryWF, "")
		return err == nil
	})
	text := func(p *commonpb.Payload) string {
		t.Helper()
		var s string
		if p == nil {
			return ""
		}
		if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	summary := func(wf string) (string, string) {
		t.Helper()
		d, err := tc.DescribeWorkflowExecution(ctx, wf, "")
		if err != nil {
			t.Fatal(err)
		}
		md := d.GetExecutionConfig().GetUserMetadata()
		return text(md.GetSummary()), text(md.GetDetails())
	}

	sum, det := summary(eventWF)
	if sum != "order.created from "+app.ID || !strings.Contains(det, "event `ui-1`") || !strings.Contains(det, "GET /v1/events/ui-1") {
		t.Errorf("event workflow summary %q, details %q", sum, det)
	}
	sum, det = summary(deliveryWF)
	if sum != "retrying delivery of order.created to "+host || !strings.Contains(det, "subscription `"+sub.ID+"`") ||
		!strings.Contains(det, "up to 5 attempts") || !strings.Contains(det, "attempts before this workflow: 1") {
		t.Errorf("delivery workflow summary %q, details %q", sum, det)
	}
	for _, s := range []string{sum, det} {
		if strings.Contains(s, "secret-path") || strings.Contains(s, "token") {
			t.Errorf("the receiver's path or query reached Temporal: %q", s)
		}
	}
	// The wait is a timer that says what it waits for; the retry signal ends it.
	eventually(t, 10*time.Second, "the Retry-After timer", func() bool {
		return len(historyMetadata(t, tc, deliveryWF, enumspb.EVENT_TYPE_TIMER_STARTED)) == 1
	})
	if got := historyMetadata(t, tc, deliveryWF, enumspb.EVENT_TYPE_TIMER_STARTED); text(got[0]) != "wait 11s before attempt 2" {
		t.Errorf("timer summary %q", text(got[0]))
	}
	s.must(s.call("POST", "/v1/deliveries/"+deliveryID+"/retry", app.Key, nil), http.StatusAccepted)
	ds := s.waitDeliveries(app.Key, "ui-1", 1, 30*time.Second)
	if ds[0]["status"] != "succeeded" || ds[0]["attempts"] != float64(3) {
		t.Fatalf("delivery = %v", ds[0])
	}
	acts := historyMetadata(t, tc, deliveryWF, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
	if len(acts) != 1 || text(acts[0]) != "POST to "+host+", attempts from 2" {
		t.Errorf("attempt activity summaries %v", acts)
	}
	// The event's wait for its deliveries says what it waits for.
	if got := historyMetadata(t, tc, eventWF, enumspb.EVENT_TYPE_TIMER_STARTED); len(got) == 0 ||
		text(got[0]) != "1 deliveries pending: look again in 15m0s unless the last one signals first" {
		t.Errorf("event workflow timer summaries %v", got)
	}
	// The event's current details tell how its deliveries ended.
	eventually(t, 30*time.Second, "the event workflow's current details", func() bool {
		q, err := tc.QueryWorkflow(ctx, eventWF, "", "__temporal_workflow_metadata")
		if err != nil {
			return false
		}
		var md sdkpb.WorkflowMetadata
		return q.Get(&md) == nil && md.GetCurrentDetails() == "1 subscribers matched, every delivery ended: 1 succeeded, 0 failed, 0 cancelled; 0 skipped by filters"
	})
}

// historyMetadata is the user-metadata summary of each history event of a type.
func historyMetadata(t *testing.T, tc client.Client, wf string, typ enumspb.EventType) []*commonpb.Payload {
	t.Helper()
	var out []*commonpb.Payload
	it := tc.GetWorkflowHistory(context.Background(), wf, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.GetEventType() == typ {
			out = append(out, e.GetUserMetadata().GetSummary())
		}
	}
	return out
}
