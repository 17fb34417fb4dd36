package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/service"
)

// One trace per event: the publisher's own trace continues through the API request, the event
// workflow (started later by the outbox), its fan-out, every attempt with its status and number,
// the retries' workflow and the failure e-mail; each POST carries its attempt's span as a W3C
// traceparent, so the receiver joins the same trace.
func TestOneTracePerEvent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	s := startStackWith(t, true, []service.Option{service.WithTracerProvider(tp)})
	app := s.newApp("traced")
	ok := testenv.NewReceiver(nil)
	t.Cleanup(ok.Close)
	failing := testenv.NewReceiver(testenv.Statuses(http.StatusInternalServerError))
	t.Cleanup(failing.Close)
	s.subscribe(app.Key, map[string]any{"url": ok.URL + "/ok", "eventTypes": []string{"order.paid"}})
	s.subscribe(app.Key, map[string]any{"url": failing.URL + "/down?token=secret", "eventTypes": []string{"order.paid"},
		"contactEmail": "ops@example.test", "retryPolicy": map[string]any{"initialIntervalMs": 50, "backoffCoefficient": 1, "maxAttempts": 2}})

	// The publisher's trace: hookd continues it.
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	parentID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/events", bytes.NewReader([]byte(`{"id":"traced-1","type":"order.paid","data":{"n":1}}`)))
	req.Header.Set("Authorization", "Bearer "+app.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID.String()+"-"+parentID.String()+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	s.waitDeliveries(app.Key, "traced-1", 2, 30*time.Second)
	if got := s.must(s.call("GET", "/v1/events/traced-1", app.Key, nil), http.StatusOK).Data()["traceId"]; got != traceID.String() {
		t.Errorf("the event's traceId is %v, want %s", got, traceID)
	}
	eventually(t, 10*time.Second, "failure e-mail", func() bool { return len(s.SMTP.Messages()) == 1 })

	// Spans end as their work ends; wait for the last ones (the e-mail's and the workflows').
	var spans tracetest.SpanStubs
	byID := map[trace.SpanID]tracetest.SpanStub{}
	eventually(t, 10*time.Second, "the e-mail's span and every workflow's span", func() bool {
		spans, byID = nil, map[trace.SpanID]tracetest.SpanStub{}
		for _, sp := range exp.GetSpans() {
			if sp.SpanContext.TraceID() == traceID {
				spans = append(spans, sp)
				byID[sp.SpanContext.SpanID()] = sp
			}
		}
		return len(named(spans, "smtp send")) == 1 && len(named(spans, "RunWorkflow:EventWorkflowV2")) == 1 &&
			len(named(spans, "RunWorkflow:DeliveryWorkflow")) == 1
	})

	// A tree: every span's parent is the publisher's span or another span of the trace.
	for _, sp := range spans {
		if p := sp.Parent.SpanID(); p != parentID {
			if _, ok := byID[p]; !ok {
				t.Errorf("span %q has a parent outside the trace", sp.Name)
			}
		}
	}
	api := only(t, spans, func(sp tracetest.SpanStub) bool {
		return sp.SpanKind == trace.SpanKindServer && attr(sp, "http.route") == "/v1/events"
	}, "the publish's server span")
	if api.Parent.SpanID() != parentID || !api.Parent.IsRemote() {
		t.Errorf("the publish's span is not a child of the publisher's span: parent %s", api.Parent.SpanID())
	}
	start := only(t, spans, func(sp tracetest.SpanStub) bool { return sp.Name == "StartWorkflow:EventWorkflowV2" }, "the event workflow's start")
	if start.Parent.SpanID() != api.SpanContext.SpanID() {
		t.Errorf("the outbox's start is not a child of the publish (parent %q)", byID[start.Parent.SpanID()].Name)
	}
	run := only(t, spans, func(sp tracetest.SpanStub) bool { return sp.Name == "RunWorkflow:EventWorkflowV2" }, "the event workflow")
	if run.Parent.SpanID() != start.SpanContext.SpanID() {
		t.Errorf("the event workflow's span is not a child of its start")
	}
	if len(named(spans, "RunActivity:FanOutPage")) == 0 {
		t.Error("no fan-out span")
	}

	// Every attempt: one span, with its number and status, named by the POST that carried it.
	posts := map[string]tracetest.SpanStub{}
	for _, sp := range spans {
		if sp.Name == "POST" && sp.SpanKind == trace.SpanKindClient {
			posts[sp.SpanContext.SpanID().String()] = sp
		}
	}
	if len(posts) != 3 {
		t.Fatalf("%d attempt spans, want 3 (1 + 2 attempts)", len(posts))
	}
	check := func(r *testenv.Receiver, status string) {
		t.Helper()
		for _, got := range r.Requests() {
			tp := got.Header.Get("traceparent")
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[1] != traceID.String() {
				t.Errorf("%s: traceparent %q is not in the event's trace", got.Path, tp)
				continue
			}
			sp, ok := posts[parts[2]]
			if !ok {
				t.Errorf("%s: traceparent %q names no attempt span", got.Path, tp)
				continue
			}
			if a := attr(sp, "webhook.attempt"); a != got.Header.Get("webhook-attempt") {
				t.Errorf("span attempt %s, request attempt %s", a, got.Header.Get("webhook-attempt"))
			}
			if st := attr(sp, "http.response.status_code"); st != status {
				t.Errorf("span status %s, want %s", st, status)
			}
			if sp.EndTime.Sub(sp.StartTime) <= 0 {
				t.Error("attempt span has no duration")
			}
			for _, kv := range sp.Attributes {
				if strings.Contains(kv.Value.Emit(), "secret") {
					t.Errorf("attempt span attribute %s leaks the URL's query: %s", kv.Key, kv.Value.Emit())
				}
			}
		}
	}
	if ok.Count() != 1 || failing.Count() != 2 {
		t.Fatalf("receivers got %d and %d requests", ok.Count(), failing.Count())
	}
	check(ok, "200")
	check(failing, "500")
	mail := only(t, spans, func(sp tracetest.SpanStub) bool { return sp.Name == "smtp send" }, "the failure e-mail")
	for p := mail.Parent.SpanID(); ; p = byID[p].Parent.SpanID() {
		if p == api.SpanContext.SpanID() {
			break
		}
		if _, ok := byID[p]; !ok {
			t.Fatal("the e-mail's span does not descend from the publish")
		}
	}
}

func named(spans tracetest.SpanStubs, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, sp := range spans {
		if sp.Name == name {
			out = append(out, sp)
		}
	}
	return out
}

func only(t *testing.T, spans tracetest.SpanStubs, match func(tracetest.SpanStub) bool, what string) tracetest.SpanStub {
	t.Helper()
	var out tracetest.SpanStubs
	for _, sp := range spans {
		if match(sp) {
			out = append(out, sp)
		}
	}
	if len(out) != 1 {
		var names []string
		for _, sp := range spans {
			names = append(names, sp.Name)
		}
		t.Fatalf("%d spans for %s, want 1; the trace has %v", len(out), what, names)
	}
	return out[0]
}

func attr(sp tracetest.SpanStub, key string) string {
	for _, kv := range sp.Attributes {
		if kv.Key == attribute.Key(key) {
			return fmt.Sprint(kv.Value.Emit())
		}
	}
	return ""
}
