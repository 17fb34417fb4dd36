package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// One event, three subscribers, one of them to another type: exactly two signed POSTs arrive.
func TestEventReachesOnlyMatchingSubscribers(t *testing.T) {
	s := newStack(t)
	app := s.newApp("shop")
	a, b, c := testenv.NewReceiver(nil), testenv.NewReceiver(nil), testenv.NewReceiver(nil)
	for _, r := range []*testenv.Receiver{a, b, c} {
		t.Cleanup(r.Close)
	}
	subA := s.subscribe(app.Key, map[string]any{"url": a.URL + "/hook", "eventTypes": []string{"order.created"}})
	subB := s.subscribe(app.Key, map[string]any{"url": b.URL, "eventTypes": []string{"order.created", "order.paid"}})
	s.subscribe(app.Key, map[string]any{"url": c.URL, "eventTypes": []string{"order.shipped"}})

	ev := s.must(s.call("POST", "/v1/events", app.Key, map[string]any{
		"id": "evt-fanout-1", "type": "order.created", "data": map[string]any{"orderId": 42, "total": "9.99"},
	}), http.StatusCreated).Data()
	if ev["id"] != "evt-fanout-1" {
		t.Fatalf("event id = %v", ev["id"])
	}
	ds := s.waitDeliveries(app.Key, "evt-fanout-1", 2, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // anything extra would have arrived by now

	for _, rc := range []struct {
		r   *testenv.Receiver
		sub testSub
	}{{a, subA}, {b, subB}} {
		reqs := rc.r.Requests()
		if len(reqs) != 1 {
			t.Fatalf("receiver of %s got %d requests, want 1", rc.sub.ID, len(reqs))
		}
		req := reqs[0]
		if err := (signature.Verifier{Secret: rc.sub.Secret}).Verify(req.Header, req.Body); err != nil {
			t.Errorf("signature does not verify with the subscription's secret: %v", err)
		}
		if got := req.Header.Get("webhook-id"); got != app.ID+"/evt-fanout-1" {
			t.Errorf("webhook-id = %q", got)
		}
		if got := req.Header.Get("webhook-attempt"); got != "1" {
			t.Errorf("webhook-attempt = %q", got)
		}
		var body map[string]any
		if err := json.Unmarshal(req.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["eventType"] != "order.created" || body["id"] != "evt-fanout-1" || body["appId"] != app.ID {
			t.Errorf("body = %s", req.Body)
		}
		if data, _ := body["data"].(map[string]any); data["orderId"] != float64(42) {
			t.Errorf("data = %v", body["data"])
		}
	}
	if n := c.Count(); n != 0 {
		t.Errorf("subscriber to another type got %d requests", n)
	}
	for _, d := range ds {
		if d["status"] != "succeeded" || d["attempts"] != float64(1) {
			t.Errorf("delivery = %v", d)
		}
		full := s.delivery(app.Key, d["id"].(string))
		atts := full["ledger"].([]any)
		if len(atts) != 1 {
			t.Fatalf("ledger has %d rows, want 1", len(atts))
		}
		row := atts[0].(map[string]any)
		if row["attempt"] != float64(1) || row["responseStatus"] != float64(200) {
			t.Errorf("ledger row = %v", row)
		}
	}
	var rows int
	if err := database.DB.Get(&rows, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id = $1`, app.ID+"/evt-fanout-1"); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("ledger rows for the event = %d, want 2", rows)
	}
}

// A receiver that fails twice and then answers 200: three attempts, then success.
func TestRetriesUntilSuccess(t *testing.T) {
	s := newStack(t)
	app := s.newApp("retry")
	r := testenv.NewReceiver(testenv.Statuses(500, 500, 200))
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"ping"},
		"retryPolicy": map[string]any{"initialIntervalMs": 200, "backoffCoefficient": 2, "maxAttempts": 5}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "evt-retry-1", "type": "ping"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "evt-retry-1", 1, 30*time.Second)
	if ds[0]["status"] != "succeeded" {
		t.Fatalf("delivery = %v", ds[0])
	}
	full := s.delivery(app.Key, ds[0]["id"].(string))
	atts := full["ledger"].([]any)
	want := []float64{500, 500, 200}
	if len(atts) != len(want) {
		t.Fatalf("ledger has %d attempts, want 3: %v", len(atts), atts)
	}
	for i, a := range atts {
		row := a.(map[string]any)
		if row["attempt"] != float64(i+1) || row["responseStatus"] != want[i] {
			t.Errorf("attempt %d = %v", i+1, row)
		}
	}
	reqs := r.Requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	for i, req := range reqs {
		if req.Header.Get("webhook-id") != app.ID+"/evt-retry-1" || req.Header.Get("webhook-attempt") != []string{"1", "2", "3"}[i] {
			t.Errorf("request %d headers: id=%q attempt=%q", i+1, req.Header.Get("webhook-id"), req.Header.Get("webhook-attempt"))
		}
		if err := (signature.Verifier{Secret: sub.Secret}).Verify(req.Header, req.Body); err != nil {
			t.Errorf("request %d: %v", i+1, err)
		}
	}
	// The backoff was honoured: 200ms, then 400ms.
	if gap := reqs[2].At.Sub(reqs[1].At); gap < 350*time.Millisecond {
		t.Errorf("second retry came %s after the first, want ≥ 400ms backoff", gap)
	}
}

// A receiver that always fails: the delivery fails after the configured attempts and exactly one
// e-mail tells the contact why.
func TestGivesUpAndSendsOneEmail(t *testing.T) {
	s := newStack(t)
	app := s.newApp("failing")
	r := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		return http.StatusInternalServerError, nil, "database on fire"
	})
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL + "/cb", "eventTypes": []string{"ping"}, "contactEmail": "ops@example.test",
		"retryPolicy": map[string]any{"initialIntervalMs": 50, "backoffCoefficient": 1.5, "maxAttempts": 3}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "evt-fail-1", "type": "ping"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "evt-fail-1", 1, 30*time.Second)
	if ds[0]["status"] != "failed" || ds[0]["attempts"] != float64(3) {
		t.Fatalf("delivery = %v", ds[0])
	}
	eventually(t, 10*time.Second, "failure e-mail", func() bool { return len(s.SMTP.Messages()) > 0 })
	time.Sleep(time.Second) // a second e-mail would be a bug
	msgs := s.SMTP.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d e-mails, want 1", len(msgs))
	}
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "ops@example.test" {
		t.Errorf("e-mail to %v", m.To)
	}
	for _, want := range []string{"evt-fail-1", r.URL + "/cb", "HTTP 500", "database on fire", "Attempts:     3", "/replay"} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("e-mail lacks %q:\n%s", want, m.Data)
		}
	}
	if n := r.Count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
	// Operators find it in the Web UI by its search attributes.
	c := temporalClient(t)
	query := fmt.Sprintf("HookdSubscriptionId = '%s' AND HookdDeliveryStatus = 'failed' AND HookdEventType = 'ping'", sub.ID)
	eventually(t, 10*time.Second, "visibility: "+query, func() bool {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		return err == nil && len(resp.Executions) == 1 && resp.Executions[0].Execution.WorkflowId == "delivery/"+app.ID+"/evt-fail-1/"+sub.ID
	})
}

// Posting the same event id again returns the original and starts nothing.
func TestRepostedEventIDIsIdempotent(t *testing.T) {
	s := newStack(t)
	app := s.newApp("dupes")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"ping"}})
	body := map[string]any{"id": "evt-dupe-1", "type": "ping", "data": map[string]any{"n": 1}}
	first := s.must(s.call("POST", "/v1/events", app.Key, body), http.StatusCreated).Data()
	s.waitDeliveries(app.Key, "evt-dupe-1", 1, 30*time.Second)
	body["data"] = map[string]any{"n": 2}
	again := s.must(s.call("POST", "/v1/events", app.Key, body), http.StatusOK)
	if again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("no Idempotent-Replayed header")
	}
	if d := again.Data(); d["receivedAt"] != first["receivedAt"] || d["data"].(map[string]any)["n"] != float64(1) {
		t.Errorf("repost returned %v, want the original %v", d, first)
	}
	time.Sleep(time.Second)
	if n := r.Count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
	c := temporalClient(t)
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: "WorkflowId = 'event/" + app.ID + "/evt-dupe-1'",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Executions); n != 1 {
		t.Errorf("%d workflow executions for the event, want 1", n)
	}

	// Ids are the publisher's own: another app may use the same id for an event of its own.
	other := s.newApp("dupes-too")
	r2 := testenv.NewReceiver(nil)
	t.Cleanup(r2.Close)
	s.subscribe(other.Key, map[string]any{"url": r2.URL, "eventTypes": []string{"ping"}})
	theirs := s.must(s.call("POST", "/v1/events", other.Key, body), http.StatusCreated).Data()
	if theirs["id"] != "evt-dupe-1" || theirs["data"].(map[string]any)["n"] != float64(2) {
		t.Errorf("the other app's event: %v", theirs)
	}
	s.waitDeliveries(other.Key, "evt-dupe-1", 1, 30*time.Second)
	if r.Count() != 1 || r2.Count() != 1 {
		t.Errorf("requests: first app's receiver %d, second's %d; want 1 and 1", r.Count(), r2.Count())
	}
	if a, b := r.Requests()[0].Header.Get("webhook-id"), r2.Requests()[0].Header.Get("webhook-id"); a == b {
		t.Errorf("two apps' events share the webhook-id %q", a)
	}
	if d := s.must(s.call("GET", "/v1/events/evt-dupe-1", app.Key, nil), http.StatusOK).Data(); d["data"].(map[string]any)["n"] != float64(1) {
		t.Errorf("first app reads %v", d)
	}
}

// Bad input is refused with a problem document and stores nothing.
func TestBadInputIsRefused(t *testing.T) {
	s := newStack(t)
	app := s.newApp("strict")
	cases := []struct {
		name, method, path, key string
		body                    any
		status                  int
		detail                  string
	}{
		{"malformed json", "POST", "/v1/events", app.Key, `{"type":`, 400, "malformed JSON"},
		{"missing type", "POST", "/v1/events", app.Key, map[string]any{"data": map[string]any{}}, 400, "type: required"},
		{"unknown field", "POST", "/v1/events", app.Key, map[string]any{"type": "x", "colour": "red"}, 400, "unknown field"},
		{"ftp url", "POST", "/v1/subscriptions", app.Key, map[string]any{"url": "ftp://example.com/x", "eventTypes": []string{"x"}}, 400, "scheme must be http or https"},
		{"no event types", "POST", "/v1/subscriptions", app.Key, map[string]any{"url": "http://127.0.0.1:9/x"}, 400, "eventTypes"},
		{"no key", "POST", "/v1/events", "", map[string]any{"type": "x"}, 401, "missing API key"},
		{"wrong key", "POST", "/v1/events", "hk_nope", map[string]any{"type": "x"}, 401, "invalid API key"},
		{"unknown event", "GET", "/v1/events/nope", app.Key, nil, 404, "not found"},
		{"wrong method", "PUT", "/v1/events", app.Key, map[string]any{"type": "x"}, 405, "PUT is not supported"},
	}
	for _, c := range cases {
		r := s.call(c.method, c.path, c.key, c.body)
		if r.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.Status, c.status, r.Raw)
			continue
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content type %q", c.name, ct)
		}
		if d, _ := r.Body["detail"].(string); !strings.Contains(d, c.detail) {
			t.Errorf("%s: detail %q lacks %q", c.name, d, c.detail)
		}
	}
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM events WHERE app_id = $1`, app.ID); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d events stored from bad input", n)
	}
}

// HOOKD_FANOUT_MODE=activity: the fan-out as a regular (heartbeating) activity delivers the same.
func TestFanOutAsRegularActivity(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.LocalFanOut = false })
	app := s.newApp("regular")
	a, b := testenv.NewReceiver(nil), testenv.NewReceiver(testenv.Statuses(503, 200))
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	s.subscribe(app.Key, map[string]any{"url": a.URL, "eventTypes": []string{"r"}})
	s.subscribe(app.Key, map[string]any{"url": b.URL, "eventTypes": []string{"r"}, "retryPolicy": map[string]any{"initialIntervalMs": 50}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "regular-1", "type": "r"}), http.StatusCreated)
	for _, d := range s.waitDeliveries(app.Key, "regular-1", 2, 20*time.Second) {
		if d["status"] != "succeeded" {
			t.Errorf("delivery %v", d)
		}
	}
	if a.Count() != 1 || b.Count() != 2 {
		t.Errorf("requests: %d and %d, want 1 and 2", a.Count(), b.Count())
	}
	c := temporalClient(t)
	hist := historyText(t, c, "event/"+app.ID+"/regular-1")
	if !strings.Contains(hist, `"activityType":{"name":"FanOutPage"}`) {
		t.Error("FanOut did not run as a regular activity")
	}
}
