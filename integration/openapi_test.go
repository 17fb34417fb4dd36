package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/hookd/hookd/api"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// Every request the tests make through stack.call, and its response, is checked against the
// OpenAPI document the API serves (api/openapi.yaml), so the document cannot drift from the code.
func init() {
	validateExchange = validateAgainstOpenAPI
	// The pages the document describes as text: their bodies are checked as strings.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.PlainBodyDecoder)
}

var openapiRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := api.LoadOpenAPI(context.Background())
	if err != nil {
		return nil, err
	}
	// The stacks listen on random loopback ports: match paths on any host.
	doc.Servers = nil
	return gorillamux.NewRouter(doc)
})

var openapiOptions = &openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	IncludeResponseStatus: true, // a status the document does not list is an error
	MultiError:            true,
}

// validateAgainstOpenAPI checks a request and its response against the document. Requests the
// server refused with a 4xx may break the document's rules (that is often the point of the test),
// but their responses must still match it; otherwise both must.
func validateAgainstOpenAPI(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	what := fmt.Sprintf("%s %s (status %d)", req.Method, req.URL.RequestURI(), resp.StatusCode)
	router, err := openapiRouter()
	if err != nil {
		t.Errorf("%s: the OpenAPI document does not load: %v", what, err)
		return
	}
	ctx := context.Background()
	r := req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	r.ContentLength = int64(len(reqBody))
	route, params, err := router.FindRoute(r)
	if errors.Is(err, routers.ErrMethodNotAllowed) && resp.StatusCode == http.StatusMethodNotAllowed {
		return // a method the document does not list, refused as it should be
	}
	if err != nil {
		t.Errorf("%s: not in the OpenAPI document: %v", what, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: openapiOptions}
	refused := resp.StatusCode >= 400 && resp.StatusCode < 500
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && !refused {
		t.Errorf("%s: the request does not match the OpenAPI document: %v\nrequest body: %s", what, err, excerpt(reqBody))
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                openapiOptions,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: the response does not match the OpenAPI document: %v\nresponse body: %s", what, err, excerpt(respBody))
	}
}

func excerpt(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// The rest of the tests exercise most operations; this one makes real traffic for the others and
// for the optional fields and alternative forms they leave out, so all of it is validated too.
func TestOpenAPIDocumentMatchesLessTravelledPaths(t *testing.T) {
	s := newStack(t)
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/docs"} {
		s.must(s.call("GET", p, "", nil), http.StatusOK)
	}
	served, err := openapi3.NewLoader().LoadFromData(s.must(s.call("GET", "/openapi.json", "", nil), http.StatusOK).Raw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := api.LoadOpenAPI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(served)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		t.Error("GET /openapi.json is not api/openapi.yaml")
	}

	pub := s.newApp("contract publisher", "read things")
	sub := s.newApp("contract subscriber", "read things")
	// The operator may list apps (paged) but not act as an app.
	page := s.must(s.call("GET", "/v1/apps?limit=1", operatorKey, nil), http.StatusOK).Data()["meta"].(map[string]any)
	if page["hasNextPage"] != true {
		t.Fatalf("apps page 1 meta = %v", page)
	}
	s.must(s.call("GET", "/v1/apps?limit=1&page="+page["nextPage"].(string), operatorKey, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/subscriptions", operatorKey, nil), http.StatusForbidden)

	// Registry: the request-wide getApiPath, another publisher's listing, the bare update form.
	s.must(s.call("POST", "/v1/topics/container/events", pub.Key, map[string]any{"getApiPath": "/things/{id}",
		"events": []map[string]any{
			{"name": "thing.created", "eventType": "thing.created", "description": "a thing was made", "type": "things"},
			{"name": "thing.gone", "eventType": "thing.gone"},
		}}), http.StatusCreated)
	s.must(s.call("GET", "/v1/topics/container/events?appId="+pub.ID, sub.Key, nil), http.StatusOK)
	s.must(s.call("PUT", "/v1/topics/container/events/thing.gone", pub.Key, map[string]any{"name": "thing.removed"}), http.StatusOK)
	s.must(s.call("PUT", "/v1/topics/container/events/thing.removed", pub.Key, map[string]any{"name": "thing.created"}), http.StatusConflict)

	// A subscription to the registered event with every optional field.
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	full := s.must(s.call("POST", "/v1/subscriptions", sub.Key, map[string]any{
		"url": r.URL, "appId": pub.ID, "topic": "container", "eventName": "thing.created",
		"filterLogic": json.RawMessage(`{"!=":[{"var":"event.kind"},"test"]}`), "contactEmail": "ops@example.test",
		"secret": secret, "callbackKey": "contract-key", "timeoutMs": 5000,
		"retryPolicy": map[string]any{"initialIntervalMs": 100, "backoffCoefficient": 1.5, "maxIntervalMs": 1000,
			"maxAttempts": 3, "maxDurationMs": 60000},
	}), http.StatusCreated).Data()
	id := full["id"].(string)
	off := s.must(s.call("POST", "/v1/subscriptions/"+id+"/disable", sub.Key, nil), http.StatusOK).Data()
	if off["active"] != false || off["disabledReason"] == nil {
		t.Errorf("disabled subscription = %v", off)
	}
	s.must(s.call("GET", "/v1/subscriptions?pageSize=10", sub.Key, nil), http.StatusOK)
	s.must(s.call("POST", "/v1/subscriptions/"+id+"/enable", sub.Key, nil), http.StatusOK)
	s.must(s.call("POST", "/v1/subscriptions/"+id+"/rotate-secret", sub.Key, nil), http.StatusOK)
	v := s.must(s.call("POST", "/v1/signatures/verify", sub.Key, map[string]any{"subscriptionId": id,
		"headers": map[string]string{"webhook-id": "x"}, "body": "{}"}), http.StatusOK).Data()
	if v["valid"] != false || v["reason"] == nil {
		t.Errorf("verify = %v", v)
	}

	// Publishing on a topic with the body's callbackUrl: 202 and a Location.
	cb := testenv.NewReceiver(nil)
	t.Cleanup(cb.Close)
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	ev := s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"id": "contract-1", "type": "thing.created",
		"topic": "container", "data": map[string]any{"kind": "real", "id": 7}, "callbackUrl": cb.URL}), http.StatusAccepted)
	if ev.Header.Get("Location") != "/v1/events/contract-1" {
		t.Errorf("Location = %q", ev.Header.Get("Location"))
	}
	ds := s.waitDeliveries(pub.Key, "contract-1", 1, 30*time.Second)
	s.must(s.call("GET", "/v1/deliveries/"+ds[0]["id"].(string), sub.Key, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/deliveries?status=succeeded&subscription="+id+"&since="+since+"&pageSize=1", sub.Key, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/events?topic=container&eventType=thing.created&since="+since, sub.Key, nil), http.StatusOK)
	s.must(s.call("POST", "/v1/events/contract-1/replay?callbackUrl="+cb.URL, pub.Key, nil), http.StatusAccepted)
	// Let the replay and both callbacks (the delivery's outcome, the replay's) finish before the stack stops.
	s.waitDeliveries(pub.Key, "contract-1", 2, 30*time.Second)
	eventually(t, 30*time.Second, "both callbacks", func() bool { return cb.Count() >= 2 })
	time.Sleep(300 * time.Millisecond)

	// Bulk delete in its POST form, without a callback.
	del := s.must(s.call("POST", "/v1/topics/container/events/bulk-delete", pub.Key, map[string]any{"action": "remove",
		"events": []string{"thing.removed", "ghost"}}), http.StatusOK).Data()
	if fmt.Sprint(del["deleted"], del["notFound"]) != "[thing.removed] [ghost]" {
		t.Errorf("bulk delete = %v", del)
	}

	// Every status a /v1 operation may answer with is a problem document.
	for _, c := range []struct{ method, path string }{{"GET", "/v1/events/nope"}, {"POST", "/v1/deliveries/nope/replay"}} {
		r := s.must(s.call(c.method, c.path, sub.Key, nil), http.StatusNotFound)
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s %s: content type %q", c.method, c.path, r.Header.Get("Content-Type"))
		}
	}
}
