package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/workflows"
)

func TestAppsNeedTheOperatorKey(t *testing.T) {
	s := newStack(t)
	app := s.newApp("", "get users")
	if !strings.HasPrefix(app.ID, "app:") {
		t.Errorf("app id %q lacks the app: prefix", app.ID)
	}
	r := s.must(s.call("POST", "/v1/apps", app.Key, map[string]any{"permissions": []string{}}), http.StatusForbidden)
	if r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	s.must(s.call("POST", "/v1/apps", "", map[string]any{}), http.StatusUnauthorized)
	// The key is stored only as a hash.
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM app_keys WHERE app_id = $1 AND key_hash <> convert_to($2, 'UTF8')
		AND position(convert_to($2, 'UTF8') IN key_hash) = 0`, app.ID, app.Key); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d key rows without the key in plain text, want 1", n)
	}
	list := s.must(s.call("GET", "/v1/apps", app.Key, nil), http.StatusOK)
	if strings.Contains(string(list.Raw), app.Secret) || strings.Contains(string(list.Raw), "apiKey") {
		t.Errorf("listing shows credentials: %s", list.Raw)
	}
}

func TestEventRegistry(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("users service", "get users")
	reg := map[string]any{
		"getApiPath": "/app/api/v2/users/{userId}",
		"events": []map[string]any{
			{"name": "usercreated", "description": "when a new user is created", "eventType": "usercreatedevent",
				"filterLogic": json.RawMessage(`{"===":["$eventType","usercreatedevent"]}`), "type": "users"},
			{"name": "userupdated", "description": "when user data is updated", "eventType": "userupdatedevent",
				"filterLogic": json.RawMessage(`{"===":["$eventType","userupdatedevent"]}`), "type": "users"},
			{"name": "availableuserevent", "description": "when a user becomes available", "eventType": "userupdatedevent",
				"filterLogic": json.RawMessage(`{"===":[{"var":"event.state"},"active:available"]}`), "type": "users"},
		},
	}
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, reg), http.StatusCreated)
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "usercreated", "eventType": "x"}}}), http.StatusConflict)
	s.must(s.call("POST", "/v1/topics/nosuchtopic/events", pub.Key, reg), http.StatusNotFound)
	bad := s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "ok", "eventType": "x"},
		{"name": "broken", "eventType": "x", "filterLogic": json.RawMessage(`{"and":[{"==":[1,1]},{"sometimes":[1]}]}`)}}}), http.StatusBadRequest)
	if d := bad.Body["detail"].(string); !strings.Contains(d, `events[1].filterLogic: $.and[1]: unknown operator "sometimes"`) {
		t.Errorf("detail %q does not say where the filter is wrong", d)
	}
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "", "eventType": "x"}}}), http.StatusBadRequest)

	// Two pages.
	p1 := s.must(s.call("GET", "/v1/topics/participant/events?pageSize=2", pub.Key, nil), http.StatusOK).Data()
	meta := p1["meta"].(map[string]any)
	if len(p1["events"].([]any)) != 2 || meta["hasNextPage"] != true || meta["nextPage"] == "" {
		t.Fatalf("page 1 = %v", p1)
	}
	p2 := s.must(s.call("GET", "/v1/topics/participant/events?pageSize=2&page="+meta["nextPage"].(string), pub.Key, nil), http.StatusOK).Data()
	meta2 := p2["meta"].(map[string]any)
	if len(p2["events"].([]any)) != 1 || meta2["hasNextPage"] != false {
		t.Fatalf("page 2 = %v", p2)
	}
	var names []string
	for _, page := range []map[string]any{p1, p2} {
		for _, e := range page["events"].([]any) {
			names = append(names, e.(map[string]any)["name"].(string))
		}
	}
	if got := strings.Join(names, ","); got != "availableuserevent,usercreated,userupdated" {
		t.Errorf("listed %s", got)
	}
	// Another app sees none of them on its own listing.
	other := s.newApp("other")
	if evs := s.must(s.call("GET", "/v1/topics/participant/events", other.Key, nil), http.StatusOK).Data()["events"].([]any); len(evs) != 0 {
		t.Errorf("another app lists %d events", len(evs))
	}

	// Update.
	up := s.must(s.call("PUT", "/v1/topics/participant/events/userupdated", pub.Key, map[string]any{"events": []map[string]any{
		{"description": "changed", "filterLogic": json.RawMessage(`{"!=":[{"var":"event.state"},"deleted"]}`)}}}), http.StatusOK).Data()
	ev := up["event"].(map[string]any)
	if ev["description"] != "changed" || ev["eventType"] != "userupdatedevent" {
		t.Errorf("updated = %v", ev)
	}
	s.must(s.call("PUT", "/v1/topics/participant/events/userupdated", pub.Key, map[string]any{"filterLogic": json.RawMessage(`{"nope":1}`)}), http.StatusBadRequest)
	s.must(s.call("PUT", "/v1/topics/participant/events/nosuch", pub.Key, map[string]any{"description": "x"}), http.StatusNotFound)
	s.must(s.call("PUT", "/v1/topics/participant/events/userupdated", other.Key, map[string]any{"description": "x"}), http.StatusNotFound)

	// Bulk delete: 25 is the limit, 26 is refused, unknown names are reported.
	var many []map[string]any
	var manyNames []string
	for i := 0; i < 24; i++ {
		n := fmt.Sprintf("bulk%02d", i)
		many = append(many, map[string]any{"name": n, "eventType": "bulkevent"})
		manyNames = append(manyNames, n)
	}
	s.must(s.call("POST", "/v1/topics/entity/events", pub.Key, map[string]any{"events": many}), http.StatusCreated)
	tooMany := append(append([]string{}, manyNames...), "ghost1", "ghost2")
	r := s.must(s.call("DELETE", "/v1/topics/entity/events", pub.Key, map[string]any{"events": tooMany}), http.StatusBadRequest)
	if d := r.Body["detail"].(string); !strings.Contains(d, "at most 25") {
		t.Errorf("26 names: %q", d)
	}
	del := s.must(s.call("PATCH", "/v1/topics/entity/events", pub.Key, map[string]any{"action": "remove", "events": append(append([]string{}, manyNames...), "ghost1")}), http.StatusOK).Data()
	if len(del["deleted"].([]any)) != 24 || fmt.Sprint(del["notFound"]) != "[ghost1]" {
		t.Errorf("bulk delete = %v", del)
	}
	del = s.must(s.call("DELETE", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []string{"usercreated", "ghost"}}), http.StatusOK).Data()
	if fmt.Sprint(del["deleted"]) != "[usercreated]" || fmt.Sprint(del["notFound"]) != "[ghost]" {
		t.Errorf("bulk delete = %v", del)
	}

	// Discovery: GET /v1/apps lists the publisher with its events.
	apps := s.must(s.call("GET", "/v1/apps?pageSize=500", other.Key, nil), http.StatusOK).Data()["apps"].([]any)
	found := false
	for _, a := range apps {
		a := a.(map[string]any)
		if a["id"] == pub.ID {
			found = len(a["events"].([]any)) == 2
		}
	}
	if !found {
		t.Errorf("publisher %s with 2 events not in the discovery listing", pub.ID)
	}
}

func TestSubscribingNeedsAPermission(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("publisher", "get users", "get user details")
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "usercreated", "eventType": "usercreatedevent"}}}), http.StatusCreated)
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	body := map[string]any{"url": r.URL, "appId": pub.ID, "topic": "participant", "eventName": "usercreated"}

	stranger := s.newApp("stranger", "update billing")
	res := s.must(s.call("POST", "/v1/subscriptions", stranger.Key, body), http.StatusForbidden)
	if !strings.Contains(res.Body["detail"].(string), "get users") {
		t.Errorf("403 does not say which permissions: %s", res.Raw)
	}
	friend := s.newApp("friend", "get user details")
	s.subscribe(friend.Key, body)
	body["eventName"] = "nosuch"
	s.must(s.call("POST", "/v1/subscriptions", friend.Key, body), http.StatusNotFound)
	var n int
	if err := database.DB.Get(&n, `SELECT count(*) FROM subscriptions WHERE app_id = $1`, stranger.ID); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("refused subscription was stored")
	}
}

// Filters of registered events and of subscriptions decide, in the real workflow, who gets what.
func TestFiltersThroughTheWorkflow(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("users", "get users")
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{
		"getApiPath": "/app/api/v2/users/{userId}",
		"events": []map[string]any{
			{"name": "usercreated", "eventType": "usercreatedevent", "type": "users",
				"filterLogic": json.RawMessage(`{"===":["$eventType","usercreatedevent"]}`)},
			{"name": "availableuserevent", "eventType": "userupdatedevent", "type": "users",
				"filterLogic": json.RawMessage(`{"===":[{"var":"event.state"},"active:available"]}`)},
		}}), http.StatusCreated)
	created, avail, availEU := testenv.NewReceiver(nil), testenv.NewReceiver(nil), testenv.NewReceiver(nil)
	for _, r := range []*testenv.Receiver{created, avail, availEU} {
		t.Cleanup(r.Close)
	}
	sub := s.newApp("crm", "get users")
	subCreated := s.subscribe(sub.Key, map[string]any{"url": created.URL, "appId": pub.ID, "topic": "participant", "eventName": "usercreated"})
	subAvail := s.subscribe(sub.Key, map[string]any{"url": avail.URL, "appId": pub.ID, "topic": "participant", "eventName": "availableuserevent"})
	s.subscribe(sub.Key, map[string]any{"url": availEU.URL, "appId": pub.ID, "topic": "participant", "eventName": "availableuserevent",
		"filterLogic": json.RawMessage(`{"==":[{"var":"event.region"},"eu"]}`)})

	publish := func(id, typ string, data map[string]any) {
		s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"id": id, "type": typ, "topic": "participant", "data": data}), http.StatusCreated)
	}
	publish("f-1", "userupdatedevent", map[string]any{"userId": "u-1", "state": "active:available", "region": "us"})
	publish("f-2", "userupdatedevent", map[string]any{"userId": "u-2", "state": "inactive", "region": "eu"})
	publish("f-3", "usercreatedevent", map[string]any{"userId": "u-3", "state": "new"})
	publish("f-4", "userupdatedevent", map[string]any{"userId": "u-4", "state": "active:available", "region": "eu"})
	s.waitDeliveries(pub.Key, "f-1", 1, 30*time.Second)
	s.waitDeliveries(pub.Key, "f-3", 1, 30*time.Second)
	s.waitDeliveries(pub.Key, "f-4", 2, 30*time.Second)
	eventually(t, 10*time.Second, "workflow of f-2 done", func() bool {
		var done bool
		database.DB.Get(&done, `SELECT dispatched_at IS NOT NULL FROM events WHERE client_id = 'f-2'`)
		return done
	})
	if ds := s.eventDeliveries(pub.Key, "f-2"); len(ds) != 0 {
		t.Errorf("inactive user produced %d deliveries", len(ds))
	}
	time.Sleep(300 * time.Millisecond)

	ids := func(r *testenv.Receiver) string {
		var out []string
		for _, q := range r.Requests() {
			out = append(out, strings.TrimPrefix(q.Header.Get("webhook-id"), pub.ID+"/"))
		}
		return strings.Join(out, ",")
	}
	if got := ids(created); got != "f-3" {
		t.Errorf("usercreated subscriber got %q", got)
	}
	if got := ids(avail); got != "f-1,f-4" && got != "f-4,f-1" {
		t.Errorf("available subscriber got %q", got)
	}
	if got := ids(availEU); got != "f-4" {
		t.Errorf("available-in-EU subscriber got %q", got)
	}
	// The payload follows the async-callback shape with the publisher and the filled API path.
	req := created.Requests()[0]
	if err := (signature.Verifier{Secret: subCreated.Secret}).Verify(req.Header, req.Body); err != nil {
		t.Error(err)
	}
	var body map[string]any
	json.Unmarshal(req.Body, &body)
	if body["eventType"] != "usercreatedevent" || body["service"] != "participant" || body["appId"] != pub.ID ||
		body["getApiPath"] != "/app/api/v2/users/u-3" {
		t.Errorf("payload = %s", req.Body)
	}
	_ = subAvail

	// Isolation: the subscriber app sees its deliveries, a third app gets 404 for everything.
	ds := s.eventDeliveries(pub.Key, "f-3")
	third := s.newApp("third")
	s.must(s.call("GET", "/v1/deliveries/"+ds[0]["id"].(string), sub.Key, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/deliveries/"+ds[0]["id"].(string), third.Key, nil), http.StatusNotFound)
	s.must(s.call("GET", "/v1/events/f-3", third.Key, nil), http.StatusNotFound)
	s.must(s.call("GET", "/v1/subscriptions/"+subCreated.ID, third.Key, nil), http.StatusNotFound)
	s.must(s.call("POST", "/v1/subscriptions/"+subCreated.ID+"/enable", third.Key, nil), http.StatusNotFound)
}

// A filter that errors at run time counts as no match, and the reason is recorded.
func TestFilterRuntimeErrorIsNoMatch(t *testing.T) {
	s := newStack(t)
	app := s.newApp("oddfilter")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"},
		"filterLogic": json.RawMessage(`{"+":["a",{"var":"event"}]}`)})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "odd-1", "type": "x", "data": map[string]any{"a": 1}}), http.StatusCreated)
	eventually(t, 10*time.Second, "dispatch", func() bool {
		var done bool
		database.DB.Get(&done, `SELECT dispatched_at IS NOT NULL FROM events WHERE client_id = 'odd-1'`)
		return done
	})
	if n := r.Count(); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
	// The reason is in the workflow's result, i.e. in Temporal's history.
	c := temporalClient(t)
	var res workflows.EventResult
	if err := c.GetWorkflow(context.Background(), "event/"+app.ID+"/odd-1", "").Get(context.Background(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "filter") {
		t.Errorf("skipped = %+v, want the filter error", res.Skipped)
	}
}

func TestSubscriptionsArePaged(t *testing.T) {
	s := newStack(t)
	app := s.newApp("pager")
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		want[s.subscribe(app.Key, map[string]any{"url": fmt.Sprintf("http://127.0.0.1:9/%d", i), "eventTypes": []string{"x"}}).ID] = true
	}
	seen := map[string]bool{}
	page := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		d := s.must(s.call("GET", "/v1/subscriptions?pageSize=2&page="+page, app.Key, nil), http.StatusOK).Data()
		for _, x := range d["subscriptions"].([]any) {
			id := x.(map[string]any)["id"].(string)
			if seen[id] {
				t.Errorf("%s listed twice", id)
			}
			seen[id] = true
		}
		meta := d["meta"].(map[string]any)
		if meta["hasNextPage"] != true {
			break
		}
		page = meta["nextPage"].(string)
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d subscriptions, want %d", len(seen), len(want))
	}
}
