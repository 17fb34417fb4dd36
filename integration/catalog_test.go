package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/workflows"
)

// orderSchema is a registered event's schema in these tests.
var orderSchema = map[string]any{
	"type":     "object",
	"required": []string{"orderId", "total"},
	"properties": map[string]any{
		"orderId": map[string]any{"type": "string", "minLength": 1},
		"total":   map[string]any{"type": "number", "minimum": 0},
		"items": map[string]any{"type": "array", "items": map[string]any{"type": "object", "required": []string{"sku"},
			"properties": map[string]any{"sku": map[string]any{"type": "string"}}}},
	},
}

// violations returns a problem's violations as pointer -> keyword.
func violations(t *testing.T, r response) map[string]string {
	t.Helper()
	out := map[string]string{}
	vs, _ := r.Body["violations"].([]any)
	for _, v := range vs {
		m := v.(map[string]any)
		out[m["pointer"].(string)] = m["keyword"].(string)
		if m["message"] == "" {
			t.Errorf("violation without a message: %v", m)
		}
	}
	return out
}

func problemType(t *testing.T, r response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
}

// A registered schema refuses a bad publish (422 naming where, nothing stored or delivered) and
// lets a good one through; an example that violates the schema and a remote $ref are refused at
// registration.
func TestCatalogSchemaValidatesPublishes(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("catalog pub")
	sub := s.newApp("catalog sub")
	rc := newReceiver(t)

	// An example that does not fit the schema: 400 naming the example and where it fails.
	r := s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []any{map[string]any{
		"name": "order.paid", "eventType": "order.paid", "schema": orderSchema,
		"examples": []any{map[string]any{"orderId": "o-1", "total": 5}, map[string]any{"orderId": "o-2", "total": "5"}}}}})
	s.must(r, http.StatusBadRequest)
	problemType(t, r)
	if r.Body["field"] != "events[0].examples[1]" || violations(t, r)["/total"] != "type" {
		t.Errorf("bad example problem: %s", r.Raw)
	}

	// A schema that refers to a URL: refused, and nothing is fetched.
	var fetched atomic.Int64
	ref := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetched.Add(1)
		w.Write([]byte(`{"type":"object"}`))
	}))
	t.Cleanup(ref.Close)
	for _, sch := range []map[string]any{
		{"$ref": ref.URL + "/order.json"},
		{"$id": ref.URL + "/base/", "properties": map[string]any{"a": map[string]any{"$ref": "a.json"}}},
	} {
		r = s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []any{map[string]any{
			"name": "order.remote", "eventType": "order.remote", "schema": sch}}})
		s.must(r, http.StatusBadRequest)
		if !strings.Contains(fmt.Sprint(r.Body["detail"]), "events[0].schema") || !strings.Contains(fmt.Sprint(r.Body["detail"]), "$ref") {
			t.Errorf("remote $ref problem: %s", r.Raw)
		}
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the schema's URL was fetched %d times", n)
	}

	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []any{map[string]any{
		"name": "order.paid", "eventType": "order.paid", "description": "An order was paid", "schema": orderSchema,
		"examples": []any{map[string]any{"orderId": "o-1", "total": 5}}}}}), http.StatusCreated)
	s.subscribe(sub.Key, map[string]any{"url": rc.URL, "appId": pub.ID, "topic": "participant", "eventName": "order.paid"})

	r = s.call("POST", "/v1/events", pub.Key, map[string]any{"id": "bad-1", "type": "order.paid", "topic": "participant",
		"data": map[string]any{"orderId": "", "items": []any{map[string]any{"sku": "a"}, map[string]any{"sku": 7}}}})
	s.must(r, http.StatusUnprocessableEntity)
	problemType(t, r)
	got := violations(t, r)
	for p, k := range map[string]string{"/orderId": "minLength", "/items/1/sku": "type", "": "required"} {
		if got[p] != k {
			t.Errorf("violation at %q: %q, want %q (%s)", p, got[p], k, r.Raw)
		}
	}
	if r.Body["eventName"] != "order.paid" {
		t.Errorf("eventName %v", r.Body["eventName"])
	}
	s.must(s.call("GET", "/v1/events/bad-1", pub.Key, nil), http.StatusNotFound)
	// The same data without a topic is checked too (it would reach the topic's subscribers).
	s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "data": map[string]any{"total": 1}}),
		http.StatusUnprocessableEntity)

	s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"id": "good-1", "type": "order.paid", "topic": "participant",
		"data": map[string]any{"orderId": "o-9", "total": 12.5}}), http.StatusCreated)
	s.waitDeliveries(pub.Key, "good-1", 1, 30*time.Second)
	if rc.Count() != 1 {
		t.Fatalf("receiver got %d requests, want 1 (the good event only)", rc.Count())
	}
	if b := decodeBody(t, rc.Requests()[0]); b["id"] != "good-1" || b["test"] != nil {
		t.Errorf("delivered %v", b)
	}

	// An event type with no schema takes anything; a schema change leaves stored events alone.
	s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"type": "other", "data": map[string]any{"x": 1}}), http.StatusCreated)
	s.must(s.call("PUT", "/v1/topics/participant/events/order.paid", pub.Key, map[string]any{
		"schema": map[string]any{"type": "object", "required": []string{"currency"}}, "examples": []any{}}), http.StatusOK)
	ev := s.must(s.call("GET", "/v1/events/good-1", pub.Key, nil), http.StatusOK).Data()
	if d, _ := ev["data"].(map[string]any); d["orderId"] != "o-9" {
		t.Errorf("stored event changed: %v", ev["data"])
	}
	s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "topic": "participant",
		"data": map[string]any{"orderId": "o-10", "total": 1}}), http.StatusUnprocessableEntity)
	// Kept examples are checked against a new schema.
	s.must(s.call("PUT", "/v1/topics/participant/events/order.paid", pub.Key, map[string]any{
		"schema": nil, "examples": []any{map[string]any{"orderId": "o-1"}}}), http.StatusOK)
	r = s.call("PUT", "/v1/topics/participant/events/order.paid", pub.Key, map[string]any{"schema": orderSchema})
	s.must(r, http.StatusBadRequest)
	if r.Body["field"] != "event.examples[0]" || violations(t, r)[""] != "required" {
		t.Errorf("kept example against a new schema: %s", r.Raw)
	}
}

// The catalog lists, across topics and publishers, what the caller may subscribe to, in pages;
// an app without a publisher's permission does not see its events; subscribing to a deprecated
// event works and says it is deprecated.
func TestCatalogPagesAndPermissions(t *testing.T) {
	s := newStack(t)
	closed := s.newApp("catalog closed", "perm-closed")
	open := s.newApp("catalog open")
	outsider := s.newApp("catalog outsider", "perm-other")
	insider := s.newApp("catalog insider", "perm-other", "perm-closed")

	s.must(s.call("POST", "/v1/topics/participant/events", closed.Key, map[string]any{"events": []any{
		map[string]any{"name": "secret.made", "eventType": "secret.made", "schema": map[string]any{"type": "object"},
			"examples": []any{map[string]any{"a": 1}}}}}), http.StatusCreated)
	s.must(s.call("POST", "/v1/topics/participant/events", open.Key, map[string]any{"events": []any{
		map[string]any{"name": "user.created", "eventType": "user.created", "description": "A user signed up"},
		map[string]any{"name": "user.removed", "eventType": "user.removed", "deprecated": true,
			"deprecationNote": "use user.deleted"}}}), http.StatusCreated)
	s.must(s.call("POST", "/v1/topics/entity/events", open.Key, map[string]any{"events": []any{
		map[string]any{"name": "entity.moved", "eventType": "entity.moved"}}}), http.StatusCreated)

	// list pages through the catalog as app key, pageSize at a time, and returns appId/topic/name.
	list := func(key string, query string) []string {
		var out []string
		page := ""
		for range 20 {
			r := s.must(s.call("GET", "/v1/event-types?pageSize=1&page="+url.QueryEscape(page)+query, key, nil), http.StatusOK).Data()
			for _, e := range r["eventTypes"].([]any) {
				m := e.(map[string]any)
				if m["appId"] != closed.ID && m["appId"] != open.ID {
					continue // other tests' apps
				}
				out = append(out, fmt.Sprintf("%s/%s/%s", m["appId"], m["topic"], m["name"]))
			}
			meta := r["meta"].(map[string]any)
			if meta["hasNextPage"] != true {
				return out
			}
			page = meta["nextPage"].(string)
		}
		t.Fatal("more than 20 pages")
		return nil
	}
	openOnes := []string{open.ID + "/entity/entity.moved", open.ID + "/participant/user.created", open.ID + "/participant/user.removed"}
	if got := list(outsider.Key, "&appId="+open.ID); fmt.Sprint(got) != fmt.Sprint(openOnes) {
		t.Errorf("outsider sees %v, want %v", got, openOnes)
	}
	if got := list(outsider.Key, "&appId="+closed.ID); len(got) != 0 {
		t.Errorf("outsider sees the closed publisher's events: %v", got)
	}
	if got := list(insider.Key, "&appId="+closed.ID); fmt.Sprint(got) != fmt.Sprint([]string{closed.ID + "/participant/secret.made"}) {
		t.Errorf("insider sees %v", got)
	}
	if got := list(insider.Key, "&topic=entity&appId="+open.ID); fmt.Sprint(got) != fmt.Sprint([]string{open.ID + "/entity/entity.moved"}) {
		t.Errorf("topic filter: %v", got)
	}
	if got := list(closed.Key, "&appId="+closed.ID); len(got) != 1 {
		t.Errorf("a publisher sees its own events: %v", got)
	}

	// The entry carries schema, examples, deprecation and the permissions that let the caller in.
	r := s.must(s.call("GET", "/v1/event-types?appId="+closed.ID, insider.Key, nil), http.StatusOK).Data()
	e := r["eventTypes"].([]any)[0].(map[string]any)
	if e["schema"] == nil || len(e["examples"].([]any)) != 1 || fmt.Sprint(e["permissions"]) != "[perm-closed]" || e["deprecated"] != false {
		t.Errorf("entry %v", e)
	}
	r = s.must(s.call("GET", "/v1/event-types?appId="+open.ID+"&eventType=user.removed", outsider.Key, nil), http.StatusOK).Data()
	e = r["eventTypes"].([]any)[0].(map[string]any)
	if e["deprecated"] != true || e["deprecationNote"] != "use user.deleted" {
		t.Errorf("deprecated entry %v", e)
	}
	s.must(s.call("GET", "/v1/event-types?page=garbage", outsider.Key, nil), http.StatusBadRequest)

	// Subscribing to a deprecated event works, with a warning.
	rc := newReceiver(t)
	sr := s.must(s.call("POST", "/v1/subscriptions", outsider.Key, map[string]any{"url": rc.URL, "appId": open.ID,
		"topic": "participant", "eventName": "user.removed"}), http.StatusCreated)
	if w := sr.Header.Get("Warning"); !strings.HasPrefix(w, "299 ") || !strings.Contains(w, "use user.deleted") {
		t.Errorf("Warning %q", w)
	}
	if dep, _ := sr.Data()["deprecation"].(map[string]any); dep["note"] != "use user.deleted" {
		t.Errorf("deprecation %v", sr.Data()["deprecation"])
	}
	sr = s.must(s.call("POST", "/v1/subscriptions", outsider.Key, map[string]any{"url": rc.URL, "appId": open.ID,
		"topic": "participant", "eventName": "user.created"}), http.StatusCreated)
	if sr.Header.Get("Warning") != "" || sr.Data()["deprecation"] != nil {
		t.Errorf("a current event warned: %v %v", sr.Header.Get("Warning"), sr.Data()["deprecation"])
	}
}

// A test send arrives signed with the subscription's secret, marked as a test, at that
// subscription only; the ledger marks it too; the sends are rate limited per subscription.
func TestTestSendIsSignedAndMarked(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("testsend pub")
	subApp := s.newApp("testsend sub")
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []any{map[string]any{
		"name": "order.paid", "eventType": "order.paid", "schema": orderSchema, "getApiPath": "/orders/{orderId}",
		"examples": []any{map[string]any{"orderId": "example-1", "total": 3}}}}}), http.StatusCreated)
	rc, other := newReceiver(t), newReceiver(t)
	sub := s.subscribe(subApp.Key, map[string]any{"url": rc.URL, "appId": pub.ID, "topic": "participant", "eventName": "order.paid"})
	s.subscribe(subApp.Key, map[string]any{"url": other.URL, "appId": pub.ID, "topic": "participant", "eventName": "order.paid"})

	// Not someone else's subscription; not an event type it does not receive; not data that fails.
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/test", pub.Key, map[string]any{"eventType": "order.paid"}), http.StatusNotFound)
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/test", subApp.Key, map[string]any{"eventType": "order.shipped"}), http.StatusBadRequest)
	r := s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/test", subApp.Key, map[string]any{"eventType": "order.paid",
		"data": map[string]any{"orderId": 5}}), http.StatusUnprocessableEntity)
	if violations(t, r)["/orderId"] != "type" {
		t.Errorf("test data problem %s", r.Raw)
	}

	r = s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/test", subApp.Key, map[string]any{"eventType": "order.paid"}), http.StatusAccepted)
	id := r.Data()["deliveryId"].(string)
	if r.Header.Get("Location") != "/v1/deliveries/"+id {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	eventually(t, 30*time.Second, "the test delivery", func() bool { return s.delivery(subApp.Key, id)["status"] == "succeeded" })
	if rc.Count() != 1 {
		t.Fatalf("receiver got %d requests", rc.Count())
	}
	req := rc.Requests()[0]
	if err := (signature.Verifier{Secret: sub.Secret}).Verify(req.Header, req.Body); err != nil {
		t.Errorf("test send not verifiable with the subscription's secret: %v", err)
	}
	b := decodeBody(t, req)
	data, _ := b["data"].(map[string]any)
	if b["test"] != true || b["eventType"] != "order.paid" || b["appId"] != pub.ID || b["deliveryId"] != id ||
		data["orderId"] != "example-1" || b["getApiPath"] != "/orders/example-1" {
		t.Errorf("test payload %s", req.Body)
	}
	if d := s.delivery(subApp.Key, id); d["test"] != true {
		t.Errorf("ledger: delivery %v not marked test", d)
	}

	// Given data, valid, is sent instead of the example; retries are the subscription's.
	flaky := testenv.NewReceiver(testenv.Statuses(503, 200))
	t.Cleanup(flaky.Close)
	fsub := s.subscribe(subApp.Key, map[string]any{"url": flaky.URL, "appId": pub.ID, "topic": "participant", "eventName": "order.paid",
		"retryPolicy": map[string]any{"initialIntervalMs": 200}})
	r = s.must(s.call("POST", "/v1/subscriptions/"+fsub.ID+"/test", subApp.Key, map[string]any{
		"data": map[string]any{"orderId": "mine", "total": 0}}), http.StatusAccepted)
	fid := r.Data()["deliveryId"].(string)
	eventually(t, 30*time.Second, "the retried test delivery", func() bool { return s.delivery(subApp.Key, fid)["status"] == "succeeded" })
	if d := s.delivery(subApp.Key, fid); d["attempts"] != float64(2) || d["test"] != true {
		t.Errorf("retried test delivery %v", d)
	}
	if b := decodeBody(t, flaky.Requests()[1]); b["data"].(map[string]any)["orderId"] != "mine" || b["test"] != true {
		t.Errorf("test with data: %v", b)
	}

	// A failed test send does not count towards the subscription's failure streak.
	broken := testenv.NewReceiver(testenv.Statuses(500))
	t.Cleanup(broken.Close)
	bsub := s.subscribe(subApp.Key, map[string]any{"url": broken.URL, "appId": pub.ID, "topic": "participant", "eventName": "order.paid",
		"retryPolicy": map[string]any{"maxAttempts": 1}})
	bid := s.must(s.call("POST", "/v1/subscriptions/"+bsub.ID+"/test", subApp.Key, map[string]any{}), http.StatusAccepted).Data()["deliveryId"].(string)
	eventually(t, 30*time.Second, "the failed test delivery", func() bool { return s.delivery(subApp.Key, bid)["status"] == "failed" })
	if got := s.must(s.call("GET", "/v1/subscriptions/"+bsub.ID, subApp.Key, nil), http.StatusOK).Data(); got["consecutiveFailures"] != float64(0) {
		t.Errorf("a failed test send counted: %v", got["consecutiveFailures"])
	}

	// At most 10 a minute per subscription: the 11th is 429 with Retry-After.
	for i := 1; i < 10; i++ {
		s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/test", subApp.Key, map[string]any{}), http.StatusAccepted)
	}
	r = s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/test", subApp.Key, map[string]any{}), http.StatusTooManyRequests)
	problemType(t, r)
	if ra := retryAfter(t, r); ra < 1 || ra > 60 {
		t.Errorf("Retry-After %d", ra)
	}
	eventually(t, 30*time.Second, "10 test deliveries", func() bool { return rc.Count() == 10 })
	time.Sleep(300 * time.Millisecond)
	if other.Count() != 0 {
		t.Errorf("another subscription got %d test sends", other.Count())
	}
}

// A schema update through one API server takes effect at once on another (two servers, one
// database): the second drops its compiled schema on PostgreSQL's notification.
func TestSchemaCacheFollowsUpdatesAcrossServers(t *testing.T) {
	a := newStack(t)
	b := startStack(t, false)
	pub := a.newApp("cache pub")
	a.must(a.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []any{map[string]any{
		"name": "order.paid", "eventType": "order.paid", "schema": orderSchema}}}), http.StatusCreated)
	// b compiles and caches the schema: this publish passes, one without total does not.
	b.must(b.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "data": map[string]any{"orderId": "a", "total": 1}}),
		http.StatusCreated)
	b.must(b.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "data": map[string]any{"orderId": "a"}}),
		http.StatusUnprocessableEntity)
	// a makes total optional and requires currency.
	a.must(a.call("PUT", "/v1/topics/participant/events/order.paid", pub.Key, map[string]any{
		"schema": map[string]any{"type": "object", "required": []string{"currency"}}}), http.StatusOK)
	start := time.Now()
	eventually(t, 5*time.Second, "server b to apply the new schema", func() bool {
		r := b.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "data": map[string]any{"orderId": "a", "total": 1}})
		return r.Status == http.StatusUnprocessableEntity
	})
	t.Logf("server b applied the new schema after %s", time.Since(start))
	b.must(b.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "data": map[string]any{"currency": "EUR"}}),
		http.StatusCreated)
	// Removing the event removes its schema everywhere too.
	a.must(a.call("POST", "/v1/topics/participant/events/bulk-delete", pub.Key, map[string]any{"events": []string{"order.paid"}}), http.StatusOK)
	eventually(t, 5*time.Second, "server b to drop the removed event's schema", func() bool {
		r := b.call("POST", "/v1/events", pub.Key, map[string]any{"type": "order.paid", "data": map[string]any{}})
		return r.Status == http.StatusCreated
	})
	// The removal's follow-up workflow ends before the stacks stop.
	id := countRows(t, `SELECT id FROM registered_events WHERE app_id = $1`, pub.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := temporalClient(t).GetWorkflow(ctx, workflows.RemovedEventWorkflowID(int64(id)), "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// hookd event-types lists the catalog; hookd test-send sends a test and follows it to the end.
func TestCatalogCLI(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("cli catalog pub")
	subApp := s.newApp("cli catalog sub")
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []any{map[string]any{
		"name": "order.paid", "eventType": "order.paid", "description": "An order was paid", "schema": orderSchema,
		"examples": []any{map[string]any{"orderId": "cli-example", "total": 1}}, "deprecated": true, "deprecationNote": "use order.settled"}}}),
		http.StatusCreated)
	rc := newReceiver(t)
	sub := s.subscribe(subApp.Key, map[string]any{"url": rc.URL, "appId": pub.ID, "topic": "participant", "eventName": "order.paid"})

	hookd := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, hookdBinary(t), args...)
		cmd.Env = append(environWithout("HOOKD_ENCRYPTION_KEY"), "HOOKD_API_URL="+s.URL, "HOOKD_API_KEY="+subApp.Key)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hookd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := hookd("event-types", "-app", pub.ID); !strings.Contains(out, "order.paid") || !strings.Contains(out, "yes use order.settled") ||
		!strings.Contains(out, "An order was paid") {
		t.Errorf("event-types:\n%s", out)
	}
	if out := hookd("event-types", "-app", pub.ID, "-schema"); !strings.Contains(out, `"minLength": 1`) || !strings.Contains(out, "cli-example") {
		t.Errorf("event-types -schema:\n%s", out)
	}
	out := hookd("test-send", sub.ID, "-data", `{"orderId":"from-cli","total":2}`)
	if !strings.Contains(out, "test delivery") || !strings.Contains(out, "status succeeded") {
		t.Errorf("test-send:\n%s", out)
	}
	if rc.Count() != 1 {
		t.Fatalf("%d requests", rc.Count())
	}
	if b := decodeBody(t, rc.Requests()[0]); b["test"] != true || b["data"].(map[string]any)["orderId"] != "from-cli" {
		t.Errorf("test-send delivered %v", b)
	}
}
