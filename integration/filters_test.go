package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// jsonList is a JSON array of n distinct strings.
func jsonList(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf(`"v%d"`, i)
	}
	return "[" + strings.Join(s, ",") + "]"
}

// nestedSome wraps inner in n "some" over a literal array of k numbers.
func nestedSome(n, k int, inner string) string {
	arr := make([]string, k)
	for i := range arr {
		arr[i] = fmt.Sprint(i)
	}
	for range n {
		inner = fmt.Sprintf(`{"some":[[%s],%s]}`, strings.Join(arr, ","), inner)
	}
	return inner
}

// A filter beyond a registration limit is refused with a problem that names the limit and the
// place, on every route that stores one.
func TestFilterLimitsAreProblems(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("catalog")
	deep := `true`
	for range 40 {
		deep = `{"!!":[` + deep + `]}`
	}
	cases := []struct{ name, rule, limit, path string }{
		{"size", `{"in":[{"var":"event.id"},` + jsonList(1200) + `]}`, "size", "$"},
		{"depth", deep, "depth", "$" + strings.Repeat(".!![0]", 16)},
		{"array", `{"in":[{"var":"event.id"},` + jsonList(257) + `]}`, "arrayLength", "$.in[1]"},
		{"nesting", nestedSome(3, 2, `true`), "iteratorNesting", "$.some[1].some[1].some"},
		{"the issue's rule", nestedSome(3, 300, `{"==":[{"var":""},-1]}`), "arrayLength", "$.some[0]"},
		{"cost", nestedSome(2, 200, `{"in":[{"var":""},`+jsonList(10)+`]}`), "cost", "$"},
	}
	recv := testenv.NewReceiver(nil)
	t.Cleanup(recv.Close)
	ok := s.subscribe(pub.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"item.changed"}})
	check := func(t *testing.T, r response, field, limit, path string) {
		t.Helper()
		if r.Status != http.StatusBadRequest {
			t.Fatalf("status %d, want 400: %s", r.Status, r.Raw)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type %q", ct)
		}
		if r.Body["limit"] != limit || r.Body["path"] != path {
			t.Errorf("limit %v at %v, want %s at %s: %s", r.Body["limit"], r.Body["path"], limit, path, r.Raw)
		}
		if d, _ := r.Body["detail"].(string); !strings.HasPrefix(d, field+": "+path+": ") {
			t.Errorf("detail %q, want it to start with %q", d, field+": "+path)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rule := json.RawMessage(c.rule)
			check(t, s.call("POST", "/v1/subscriptions", pub.Key, map[string]any{"url": recv.URL,
				"eventTypes": []string{"item.changed"}, "filterLogic": rule}), "filterLogic", c.limit, c.path)
			check(t, s.call("PATCH", "/v1/subscriptions/"+ok.ID, pub.Key, map[string]any{"filterLogic": rule}),
				"filterLogic", c.limit, c.path)
			check(t, s.call("POST", "/v1/topics/entity/events", pub.Key, map[string]any{"events": []map[string]any{
				{"name": "fine", "eventType": "item.changed"},
				{"name": "costly", "eventType": "item.changed", "filterLogic": rule}}}), "events[1].filterLogic", c.limit, c.path)
		})
	}
	// An ordinary filter still goes through, at its limits.
	s.must(s.call("PATCH", "/v1/subscriptions/"+ok.ID, pub.Key, map[string]any{
		"filterLogic": json.RawMessage(`{"in":[{"var":"event.id"},` + jsonList(256) + `]}`)}), http.StatusOK)
}

// hostileFilters are the filters registration accepts that cost the most on large event data
// (the slowest of filter.hostile, each about 6 ms of CPU): per-element work on short strings,
// string building, and compares against a 256-element list.
var hostileFilters = []string{
	`{"some":[{"var":"event.xs"},{"substr":[{"var":"x"},1]}]}`,
	`{"reduce":[{"var":"event.xs"},{"cat":[{"var":"accumulator"},{"var":"current"}]},""]}`,
	`{"some":[{"var":"event.xs"},{"in":[{"var":""},` + jsonList(256) + `]}]}`,
}

// One app's most expensive filters delay another app's delivery of the same event by well
// under a second, and say on their subscriptions why they did not match.
func TestHostileFiltersDoNotDelayOthers(t *testing.T) {
	s := newStack(t)
	pub := s.newApp("catalog")
	s.must(s.call("POST", "/v1/topics/entity/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "bulk", "eventType": "bulk.changed"}}}), http.StatusCreated)
	honest, hostile := s.newApp("honest"), s.newApp("hostile")
	recvB, recvA := testenv.NewReceiver(nil), testenv.NewReceiver(nil)
	t.Cleanup(recvB.Close)
	t.Cleanup(recvA.Close)
	s.subscribe(honest.Key, map[string]any{"url": recvB.URL, "appId": pub.ID, "topic": "entity", "eventName": "bulk"})

	// About 240 KiB of data: 20,000 short strings and a long one.
	var b strings.Builder
	b.WriteString(`{"xs":[`)
	for i := range 20_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"x%06d"`, i)
	}
	b.WriteString(`],"s":"` + strings.Repeat("é", 10_000) + `"}`)
	payload := json.RawMessage(b.String())

	n := 0
	// deliveredIn publishes an event and returns how long until the honest app's receiver had it.
	deliveredIn := func() time.Duration {
		n++
		before := recvB.Count()
		start := time.Now()
		s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"id": fmt.Sprintf("bulk-%d", n), "type": "bulk.changed",
			"topic": "entity", "data": payload}), http.StatusCreated)
		eventually(t, 30*time.Second, "the honest delivery", func() bool { return recvB.Count() > before })
		return recvB.Requests()[before].At.Sub(start)
	}
	fastest := func(k int) time.Duration {
		best := time.Hour
		for range k {
			best = min(best, deliveredIn())
		}
		return best
	}
	deliveredIn() // warm up: workers, connections, prepared statements
	alone := fastest(3)

	var subs []testSub
	for _, rule := range hostileFilters {
		subs = append(subs, s.subscribe(hostile.Key, map[string]any{"url": recvA.URL, "appId": pub.ID, "topic": "entity",
			"eventName": "bulk", "filterLogic": json.RawMessage(rule)}))
	}
	beside := fastest(3)
	t.Logf("honest delivery: %v alone, %v beside %d hostile filters", alone, beside, len(hostileFilters))
	if beside-alone > time.Second {
		t.Fatalf("the hostile filters delayed another app's delivery by %v", beside-alone)
	}
	if c := recvA.Count(); c != 0 {
		t.Errorf("the hostile filters' receiver got %d POSTs", c)
	}
	for i, sub := range subs {
		d := s.must(s.call("GET", "/v1/subscriptions/"+sub.ID, hostile.Key, nil), http.StatusOK).Data()
		why, _ := d["filterError"].(string)
		if !strings.Contains(why, "evaluation budget exhausted") || d["filterErrorAt"] == nil {
			t.Errorf("filter %d: filterError %q at %v, want the budget named", i, why, d["filterErrorAt"])
		}
	}
	// A new filter has not failed yet.
	s.must(s.call("PATCH", "/v1/subscriptions/"+subs[0].ID, hostile.Key, map[string]any{
		"filterLogic": json.RawMessage(`{"==":[1,2]}`)}), http.StatusOK)
	d := s.must(s.call("GET", "/v1/subscriptions/"+subs[0].ID, hostile.Key, nil), http.StatusOK).Data()
	if _, has := d["filterError"]; has {
		t.Errorf("filterError survived a new filter: %v", d["filterError"])
	}
}
