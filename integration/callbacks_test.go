package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// decodeBody unmarshals a received callback.
func decodeBody(t *testing.T, r testenv.Request) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("callback body %s: %v", r.Body, err)
	}
	return m
}

// ?callbackURL= on publish answers 202 at once; the callback arrives when every delivery has ended.
func TestPublishWithCallbackURL(t *testing.T) {
	s := newStack(t)
	app := s.newApp("asyncpub")
	slow := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 503, nil, "warming up"
		}
		return 200, nil, "ok"
	})
	fast := testenv.NewReceiver(nil)
	cb := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		return http.StatusCreated, http.Header{"X-Receipt": {"r-77"}}, `{"received":true}`
	})
	for _, r := range []*testenv.Receiver{slow, fast, cb} {
		t.Cleanup(r.Close)
	}
	subSlow := s.subscribe(app.Key, map[string]any{"url": slow.URL, "eventTypes": []string{"job"}, "retryPolicy": map[string]any{"initialIntervalMs": 300}})
	subFast := s.subscribe(app.Key, map[string]any{"url": fast.URL, "eventTypes": []string{"job"}})

	start := time.Now()
	r := s.must(s.call("POST", "/v1/events?callbackURL="+cb.URL+"/done", app.Key, map[string]any{"id": "job-1", "type": "job"}), http.StatusAccepted)
	if r.Data()["requestId"] != "job-1" {
		t.Errorf("requestId = %v", r.Data()["requestId"])
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("202 took %s", time.Since(start))
	}
	eventually(t, 30*time.Second, "completion callback", func() bool { return cb.Count() > 0 })
	req := cb.Requests()[0]
	if err := (signature.Verifier{Secret: app.Secret}).Verify(req.Header, req.Body); err != nil {
		t.Errorf("callback not signed with the app's secret: %v", err)
	}
	body := decodeBody(t, req)
	if body["eventType"] != "event.completed" || body["service"] != "webhooks" {
		t.Errorf("callback = %s", req.Body)
	}
	data := body["data"].(map[string]any)
	outcomes := map[string]string{}
	for _, d := range data["deliveries"].([]any) {
		d := d.(map[string]any)
		outcomes[d["subscriptionId"].(string)] = fmt.Sprint(d["status"], "/", d["attempts"])
	}
	if outcomes[subSlow.ID] != "succeeded/2" || outcomes[subFast.ID] != "succeeded/1" || data["requestId"] != "job-1" {
		t.Errorf("outcomes = %v (data %v)", outcomes, data)
	}
	if !req.At.After(slow.Requests()[1].At) {
		t.Error("callback arrived before the last delivery finished")
	}
	// The receiver's answer is in the ledger.
	id := strings.TrimPrefix(req.Header.Get("webhook-id"), app.ID+"/")
	ds := s.waitDeliveries(app.Key, id, 1, 10*time.Second)
	att := s.delivery(app.Key, ds[0]["id"].(string))["ledger"].([]any)[0].(map[string]any)
	rh, _ := att["responseHeaders"].(map[string]any)
	if att["responseStatus"] != float64(201) || att["responseBody"] != `{"received":true}` || rh == nil || rh["Content-Type"] == nil {
		t.Errorf("ledger row = %v", att)
	}
}

// POST /v1/callbacks: a one-off callback that fails twice and then succeeds.
func TestOneOffCallbackRetries(t *testing.T) {
	s := newStack(t)
	app := s.newApp("oneoff")
	r := testenv.NewReceiver(testenv.Statuses(500, 502, 202))
	t.Cleanup(r.Close)
	res := s.must(s.call("POST", "/v1/callbacks", app.Key, map[string]any{"url": r.URL + "/cb", "eventType": "containerCreated",
		"service": "container", "data": map[string]any{"containerId": "c-9"}}), http.StatusAccepted).Data()
	id := res["requestId"].(string)
	ds := s.waitDeliveries(app.Key, id, 1, 30*time.Second)
	if ds[0]["status"] != "succeeded" || ds[0]["attempts"] != float64(3) {
		t.Fatalf("delivery = %v", ds[0])
	}
	reqs := r.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, q := range reqs {
		if err := (signature.Verifier{Secret: app.Secret}).Verify(q.Header, q.Body); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		b := decodeBody(t, q)
		if b["eventType"] != "containerCreated" || b["service"] != "container" || b["data"].(map[string]any)["containerId"] != "c-9" ||
			b["retryCount"] != float64(i) {
			t.Errorf("attempt %d body = %s", i+1, q.Body)
		}
	}
	atts := s.delivery(app.Key, ds[0]["id"].(string))["ledger"].([]any)
	var statuses []string
	for _, a := range atts {
		statuses = append(statuses, fmt.Sprint(a.(map[string]any)["responseStatus"]))
	}
	if strings.Join(statuses, ",") != "500,502,202" {
		t.Errorf("ledger statuses %v", statuses)
	}
	s.must(s.call("POST", "/v1/callbacks", app.Key, map[string]any{"url": "gopher://x", "eventType": "a"}), http.StatusBadRequest)
}

func TestBulkDeleteAndReplayWithCallback(t *testing.T) {
	s := newStack(t)
	app := s.newApp("asyncops")
	cb := testenv.NewReceiver(nil)
	hook := testenv.NewReceiver(nil)
	t.Cleanup(cb.Close)
	t.Cleanup(hook.Close)
	s.must(s.call("POST", "/v1/topics/entity/events", app.Key, map[string]any{"events": []map[string]any{
		{"name": "orderpacked", "eventType": "packed"}, {"name": "orderdispatched", "eventType": "dispatched"}}}), http.StatusCreated)
	res := s.must(s.call("POST", "/v1/topics/entity/events/bulk-delete?callbackUrl="+cb.URL, app.Key,
		map[string]any{"action": "remove", "events": []string{"orderpacked", "nope"}}), http.StatusAccepted).Data()
	if res["requestId"] == nil {
		t.Fatalf("no requestId: %v", res)
	}
	eventually(t, 20*time.Second, "bulk delete callback", func() bool { return cb.Count() == 1 })
	b := decodeBody(t, cb.Requests()[0])
	if b["eventType"] != "events.bulkDeleted" || fmt.Sprint(b["data"].(map[string]any)["deleted"]) != "[orderpacked]" ||
		fmt.Sprint(b["data"].(map[string]any)["notFound"]) != "[nope]" {
		t.Errorf("callback = %s", cb.Requests()[0].Body)
	}

	s.subscribe(app.Key, map[string]any{"url": hook.URL, "eventTypes": []string{"x"}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "rp-cb-1", "type": "x"}), http.StatusCreated)
	s.waitDeliveries(app.Key, "rp-cb-1", 1, 20*time.Second)
	rr := s.must(s.call("POST", "/v1/events/rp-cb-1/replay", app.Key, map[string]any{"callbackUrl": cb.URL + "/replayed"}), http.StatusAccepted).Data()
	eventually(t, 20*time.Second, "replay callback", func() bool { return cb.Count() == 2 })
	b = decodeBody(t, cb.Requests()[1])
	d := b["data"].(map[string]any)
	if b["eventType"] != "event.replayed" || d["requestId"] != rr["requestId"] || len(d["deliveries"].([]any)) != 1 ||
		d["deliveries"].([]any)[0].(map[string]any)["status"] != "succeeded" {
		t.Errorf("replay callback = %s", cb.Requests()[1].Body)
	}
	if hook.Count() != 2 {
		t.Errorf("subscriber got %d requests, want 2", hook.Count())
	}
}

// Polling returns every event exactly once across pages while new events keep arriving.
func TestPollingWhileEventsArrive(t *testing.T) {
	s := newStack(t)
	app := s.newApp("poller")
	other := s.newApp("noise")
	const total = 60
	var wg sync.WaitGroup
	wg.Add(2)
	for w := 0; w < 2; w++ { // two concurrent publishers, so commits interleave
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += 2 {
				s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("poll-%03d", i), "type": "tick"})
				s.call("POST", "/v1/events", other.Key, map[string]any{"id": fmt.Sprintf("noise-%03d", i), "type": "tick"})
			}
		}(w)
	}
	seen := map[string]int{}
	cursor := ""
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		for {
			q := "/v1/events?limit=7&eventType=tick"
			if cursor != "" {
				q += "&since=" + cursor
			}
			d := s.must(s.call("GET", q, app.Key, nil), http.StatusOK).Data()
			evs := d["events"].([]any)
			for _, e := range evs {
				seen[e.(map[string]any)["id"].(string)]++
			}
			cursor = d["meta"].(map[string]any)["nextCursor"].(string)
			if len(evs) < 7 {
				break
			}
		}
		if finished && len(seen) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) != total {
		t.Errorf("saw %d distinct events, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 || !strings.HasPrefix(id, "poll-") {
			t.Errorf("event %s seen %d times", id, n)
		}
	}
	s.must(s.call("GET", "/v1/events?since=garbage", app.Key, nil), http.StatusBadRequest)
}

func TestListFailedDeliveries(t *testing.T) {
	s := newStack(t)
	app := s.newApp("lister")
	bad := testenv.NewReceiver(testenv.Statuses(500))
	good := testenv.NewReceiver(nil)
	t.Cleanup(bad.Close)
	t.Cleanup(good.Close)
	subBad := s.subscribe(app.Key, map[string]any{"url": bad.URL, "eventTypes": []string{"x"}, "retryPolicy": map[string]any{"maxAttempts": 1}})
	s.subscribe(app.Key, map[string]any{"url": good.URL, "eventTypes": []string{"x"}})
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("lf-%d", i)
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": id, "type": "x"}), http.StatusCreated)
		s.waitDeliveries(app.Key, id, 2, 20*time.Second)
	}
	var got []string
	page := ""
	for {
		q := "/v1/deliveries?status=failed&limit=2&subscription=" + subBad.ID
		if page != "" {
			q += "&page=" + page
		}
		d := s.must(s.call("GET", q, app.Key, nil), http.StatusOK).Data()
		for _, x := range d["deliveries"].([]any) {
			got = append(got, x.(map[string]any)["eventId"].(string))
		}
		meta := d["meta"].(map[string]any)
		if meta["hasNextPage"] != true {
			break
		}
		page = meta["nextPage"].(string)
	}
	if strings.Join(got, ",") != "lf-0,lf-1,lf-2" {
		t.Errorf("failed deliveries: %v", got)
	}
	d := s.must(s.call("GET", "/v1/deliveries?status=failed", s.newApp("nobody").Key, nil), http.StatusOK).Data()
	if n := len(d["deliveries"].([]any)); n != 0 {
		t.Errorf("another app sees %d deliveries", n)
	}
}
