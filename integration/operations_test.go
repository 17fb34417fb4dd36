package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// firstDelivery waits for the event's only delivery to exist and returns its id.
func (s *stack) firstDelivery(key, eventID string) string {
	s.t.Helper()
	var id string
	eventually(s.t, 20*time.Second, "delivery of "+eventID, func() bool {
		ds := s.eventDeliveries(key, eventID)
		if len(ds) == 0 {
			return false
		}
		id = ds[0]["id"].(string)
		return true
	})
	return id
}

// signalWhenReady posts cancel or retry until the delivery's retry workflow exists to take it.
func (s *stack) signalWhenReady(key, deliveryID, signal string) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, signal+" accepted", func() bool {
		r := s.call("POST", "/v1/deliveries/"+deliveryID+"/"+signal, key, map[string]any{"reason": "test"})
		return r.Status == http.StatusAccepted
	})
}

func TestCancelDuringBackoff(t *testing.T) {
	s := newStack(t)
	app := s.newApp("cancel")
	r := testenv.NewReceiver(testenv.Statuses(500))
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"},
		"retryPolicy": map[string]any{"initialIntervalMs": 60_000, "maxAttempts": 10}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "cancel-1", "type": "x"}), http.StatusCreated)
	id := s.firstDelivery(app.Key, "cancel-1")
	s.signalWhenReady(app.Key, id, "cancel")
	eventually(t, 10*time.Second, "cancelled", func() bool { return s.delivery(app.Key, id)["status"] == "cancelled" })
	time.Sleep(500 * time.Millisecond)
	d := s.delivery(app.Key, id)
	if n := len(d["ledger"].([]any)); n != 1 || r.Count() != 1 {
		t.Errorf("after cancel: %d ledger rows, %d requests; want 1 and 1", n, r.Count())
	}
	if !strings.Contains(d["lastError"].(string), "cancelled") {
		t.Errorf("lastError = %v", d["lastError"])
	}
	s.must(s.call("POST", "/v1/deliveries/"+id+"/cancel", app.Key, nil), http.StatusConflict)
}

func TestRetrySignalSkipsBackoff(t *testing.T) {
	s := newStack(t)
	app := s.newApp("retrynow")
	r := testenv.NewReceiver(testenv.Statuses(500, 200))
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"},
		"retryPolicy": map[string]any{"initialIntervalMs": 60_000, "maxAttempts": 10}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "retry-now-1", "type": "x"}), http.StatusCreated)
	id := s.firstDelivery(app.Key, "retry-now-1")
	s.signalWhenReady(app.Key, id, "retry")
	eventually(t, 15*time.Second, "succeeded", func() bool { return s.delivery(app.Key, id)["status"] == "succeeded" })
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap > 30*time.Second {
		t.Errorf("second attempt %s after the first: the retry signal did not cut the 60 s backoff", gap)
	}
	if reqs[1].Header.Get("webhook-attempt") != "2" || reqs[1].Header.Get("webhook-id") != app.ID+"/retry-now-1" {
		t.Errorf("second attempt headers %v", reqs[1].Header)
	}
	atts := s.delivery(app.Key, id)["ledger"].([]any)
	if len(atts) != 2 || atts[1].(map[string]any)["attempt"] != float64(2) {
		t.Errorf("ledger = %v", atts)
	}
}

func TestReplay(t *testing.T) {
	s := newStack(t)
	app := s.newApp("replay")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "replay-1", "type": "x", "data": map[string]any{"v": 1}}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "replay-1", 1, 20*time.Second)
	orig := ds[0]["id"].(string)
	rep := s.must(s.call("POST", "/v1/deliveries/"+orig+"/replay", app.Key, nil), http.StatusAccepted).Data()
	if rep["replay"] != float64(1) || rep["id"] == orig {
		t.Fatalf("replay = %v", rep)
	}
	eventually(t, 20*time.Second, "replay delivered", func() bool { return s.delivery(app.Key, rep["id"].(string))["status"] == "succeeded" })
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[0].Header.Get("webhook-id") != reqs[1].Header.Get("webhook-id") {
		t.Errorf("replay changed the webhook-id")
	}
	var body map[string]any
	json.Unmarshal(reqs[1].Body, &body)
	if body["replay"] != float64(1) {
		t.Errorf("replayed body = %s", reqs[1].Body)
	}
	if err := (signature.Verifier{Secret: sub.Secret}).Verify(reqs[1].Header, reqs[1].Body); err != nil {
		t.Error(err)
	}
	full := s.delivery(app.Key, rep["id"].(string))
	if atts := full["ledger"].([]any); len(atts) != 1 || full["workflowId"] != "delivery/"+app.ID+"/replay-1/"+sub.ID+"/replay-1" {
		t.Errorf("replay delivery = %v", full)
	}
	// The whole event again: one more replay per subscriber.
	er := s.must(s.call("POST", "/v1/events/replay-1/replay", app.Key, nil), http.StatusAccepted).Data()
	if n := len(er["replays"].([]any)); n != 1 {
		t.Fatalf("event replay started %d", n)
	}
	s.waitDeliveries(app.Key, "replay-1", 3, 20*time.Second)
	if r.Count() != 3 {
		t.Errorf("%d requests after event replay, want 3", r.Count())
	}
	s.must(s.call("POST", "/v1/deliveries/"+orig+"/replay", s.newApp("stranger").Key, nil), http.StatusNotFound)
}

func TestGoneDisablesSubscription(t *testing.T) {
	s := newStack(t)
	app := s.newApp("gone")
	r := testenv.NewReceiver(testenv.Statuses(http.StatusGone))
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"}, "contactEmail": "gone@example.test",
		"retryPolicy": map[string]any{"initialIntervalMs": 50, "maxAttempts": 10}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "gone-1", "type": "x"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "gone-1", 1, 20*time.Second)
	if ds[0]["status"] != "failed" || ds[0]["attempts"] != float64(1) {
		t.Errorf("delivery = %v", ds[0])
	}
	got := s.must(s.call("GET", "/v1/subscriptions/"+sub.ID, app.Key, nil), http.StatusOK).Data()
	if got["active"] != false || !strings.Contains(got["disabledReason"].(string), "410") {
		t.Errorf("subscription = %v", got)
	}
	eventually(t, 10*time.Second, "two e-mails", func() bool { return len(s.SMTP.Messages()) >= 2 })
	if r.Count() != 1 {
		t.Errorf("%d requests after 410", r.Count())
	}
}

// Retry-After is honoured up to the policy's maximum interval, never beyond it.
func TestRetryAfterIsRespected(t *testing.T) {
	s := newStack(t)
	app := s.newApp("ratelimited")
	answer := func(retryAfter string) *testenv.Receiver {
		r := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
			if n == 1 {
				return http.StatusTooManyRequests, http.Header{"Retry-After": {retryAfter}}, "slow down"
			}
			return http.StatusOK, nil, "ok"
		})
		t.Cleanup(r.Close)
		return r
	}
	honoured, capped := answer("2"), answer("99999999")
	s.subscribe(app.Key, map[string]any{"url": honoured.URL, "eventTypes": []string{"x"},
		"retryPolicy": map[string]any{"initialIntervalMs": 50, "maxIntervalMs": 10000, "maxAttempts": 5}})
	s.subscribe(app.Key, map[string]any{"url": capped.URL, "eventTypes": []string{"x"},
		"retryPolicy": map[string]any{"initialIntervalMs": 50, "maxIntervalMs": 1500, "maxAttempts": 5}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "ra-1", "type": "x"}), http.StatusCreated)
	s.waitDeliveries(app.Key, "ra-1", 2, 20*time.Second)
	for _, c := range []struct {
		r        *testenv.Receiver
		min, max time.Duration
	}{{honoured, 1900 * time.Millisecond, 5 * time.Second}, {capped, 1400 * time.Millisecond, 5 * time.Second}} {
		reqs := c.r.Requests()
		if len(reqs) != 2 {
			t.Fatalf("%d requests", len(reqs))
		}
		if gap := reqs[1].At.Sub(reqs[0].At); gap < c.min || gap > c.max {
			t.Errorf("Retry-After %s: retried after %s, want %s to %s", reqs[0].Header.Get("x"), gap, c.min, c.max)
		}
	}
}

func TestRotatedSecretsAndCallbackKey(t *testing.T) {
	s := newStack(t)
	app := s.newApp("rotate")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"}, "callbackKey": "onespan-key-123"})
	rot := s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/rotate-secret", app.Key, map[string]any{"graceMs": 3_600_000}), http.StatusOK).Data()
	newSecret := rot["secret"].(string)
	if newSecret == sub.Secret {
		t.Fatal("rotation kept the secret")
	}
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "rot-1", "type": "x"}), http.StatusCreated)
	s.waitDeliveries(app.Key, "rot-1", 1, 20*time.Second)
	req := r.Requests()[0]
	if sigs := strings.Fields(req.Header.Get("webhook-signature")); len(sigs) != 2 {
		t.Errorf("signature header %q, want two signatures", req.Header.Get("webhook-signature"))
	}
	for _, sec := range []string{sub.Secret, newSecret} {
		if err := (signature.Verifier{Secret: sec}).Verify(req.Header, req.Body); err != nil {
			t.Errorf("rotated secret does not verify: %v", err)
		}
	}
	if got := req.Header.Get("Authorization"); got != "Basic onespan-key-123" {
		t.Errorf("Authorization = %q", got)
	}
	// The callback key is a credential: the ledger does not keep it.
	var hdrs string
	database.DB.Get(&hdrs, `SELECT a.request_headers::text FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id = $1`, app.ID+"/rot-1")
	if strings.Contains(hdrs, "onespan-key-123") || !strings.Contains(hdrs, "redacted") {
		t.Errorf("ledger headers = %s", hdrs)
	}

	// The verify endpoint: genuine, tampered, stale.
	verify := func(headers map[string]string, body string) map[string]any {
		return s.must(s.call("POST", "/v1/signatures/verify", app.Key, map[string]any{
			"subscriptionId": sub.ID, "headers": headers, "body": body}), http.StatusOK).Data()
	}
	h := map[string]string{"webhook-id": req.Header.Get("webhook-id"), "webhook-timestamp": req.Header.Get("webhook-timestamp"),
		"webhook-signature": req.Header.Get("webhook-signature")}
	if v := verify(h, string(req.Body)); v["valid"] != true {
		t.Errorf("genuine request: %v", v)
	}
	if v := verify(h, string(req.Body)+" "); v["valid"] != false {
		t.Errorf("tampered body: %v", v)
	}
	old := time.Now().Add(-time.Hour)
	sig, _ := signature.Sign(newSecret, "rot-1", old, req.Body)
	stale := map[string]string{"webhook-id": "rot-1", "webhook-timestamp": strconv.FormatInt(old.Unix(), 10), "webhook-signature": sig}
	if v := verify(stale, string(req.Body)); v["valid"] != false || !strings.Contains(v["reason"].(string), "tolerance") {
		t.Errorf("stale timestamp: %v", v)
	}
}

func TestFailingSubscriptionIsDisabledAndReenabled(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.DisableAfterFailures = 2 })
	app := s.newApp("flaky")
	var healthy atomic.Bool
	r := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		if healthy.Load() {
			return 200, nil, "ok"
		}
		return 500, nil, "down"
	})
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"x"}, "contactEmail": "flaky@example.test",
		"retryPolicy": map[string]any{"maxAttempts": 1}})
	for _, id := range []string{"flaky-1", "flaky-2"} {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": id, "type": "x"}), http.StatusCreated)
		s.waitDeliveries(app.Key, id, 1, 20*time.Second)
	}
	got := s.must(s.call("GET", "/v1/subscriptions/"+sub.ID, app.Key, nil), http.StatusOK).Data()
	if got["active"] != false || !strings.Contains(got["disabledReason"].(string), "2 failed deliveries in a row") {
		t.Fatalf("subscription = %v", got)
	}
	eventually(t, 10*time.Second, "3 e-mails", func() bool { return len(s.SMTP.Messages()) >= 3 })
	var disabledMail int
	for _, m := range s.SMTP.Messages() {
		if strings.Contains(m.Data, "subscription disabled") && strings.Contains(m.Data, "/enable") {
			disabledMail++
		}
	}
	if disabledMail != 1 {
		t.Errorf("%d 'disabled' e-mails, want 1", disabledMail)
	}
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "flaky-3", "type": "x"}), http.StatusCreated)
	eventually(t, 10*time.Second, "flaky-3 dispatched", func() bool {
		var done bool
		database.DB.Get(&done, `SELECT dispatched_at IS NOT NULL FROM events WHERE client_id = 'flaky-3'`)
		return done
	})
	if n := r.Count(); n != 2 {
		t.Errorf("disabled subscription received: %d requests", n)
	}
	healthy.Store(true)
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/enable", app.Key, nil), http.StatusOK)
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "flaky-4", "type": "x"}), http.StatusCreated)
	if ds := s.waitDeliveries(app.Key, "flaky-4", 1, 20*time.Second); ds[0]["status"] != "succeeded" {
		t.Errorf("after enable: %v", ds[0])
	}
}

// Deleting a subscription stops it matching, hides it from its owner and cancels its retries.
func TestDeleteSubscription(t *testing.T) {
	s := newStack(t)
	app := s.newApp("deleter")
	r := testenv.NewReceiver(testenv.Statuses(500))
	t.Cleanup(r.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"d"},
		"retryPolicy": map[string]any{"initialIntervalMs": 60_000, "maxAttempts": 10}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "del-1", "type": "d"}), http.StatusCreated)
	id := s.firstDelivery(app.Key, "del-1")
	// Wait for the retry workflow, so the delete has something to cancel.
	eventually(t, 20*time.Second, "retry workflow", func() bool {
		_, err := temporalClient(t).DescribeWorkflowExecution(context.Background(), "delivery/"+app.ID+"/del-1/"+sub.ID, "")
		return err == nil
	})
	s.must(s.call("DELETE", "/v1/subscriptions/"+sub.ID, app.Key, nil), http.StatusNoContent)
	eventually(t, 10*time.Second, "cancelled", func() bool { return s.delivery(app.Key, id)["status"] == "cancelled" })
	s.must(s.call("GET", "/v1/subscriptions/"+sub.ID, app.Key, nil), http.StatusNotFound)
	s.must(s.call("DELETE", "/v1/subscriptions/"+sub.ID, app.Key, nil), http.StatusNotFound)
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/enable", app.Key, nil), http.StatusNotFound)
	if subs := s.must(s.call("GET", "/v1/subscriptions", app.Key, nil), http.StatusOK).Data()["subscriptions"].([]any); len(subs) != 0 {
		t.Errorf("deleted subscription listed: %v", subs)
	}
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "del-2", "type": "d"}), http.StatusCreated)
	eventually(t, 10*time.Second, "del-2 dispatched", func() bool {
		var done bool
		database.DB.Get(&done, `SELECT dispatched_at IS NOT NULL FROM events WHERE client_id = 'del-2'`)
		return done
	})
	if ds := s.eventDeliveries(app.Key, "del-2"); len(ds) != 0 || r.Count() != 1 {
		t.Errorf("after delete: %d deliveries, %d requests", len(ds), r.Count())
	}
	// The delivery and its ledger stay readable.
	if atts := s.delivery(app.Key, id)["ledger"].([]any); len(atts) != 1 {
		t.Errorf("ledger after delete: %v", atts)
	}
	s.must(s.call("DELETE", "/v1/subscriptions/"+sub.ID, s.newApp("other").Key, nil), http.StatusNotFound)
}

func TestUpdateSubscription(t *testing.T) {
	s := newStack(t)
	app := s.newApp("updater")
	oldR, newR := testenv.NewReceiver(nil), testenv.NewReceiver(nil)
	t.Cleanup(oldR.Close)
	t.Cleanup(newR.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": oldR.URL, "eventTypes": []string{"a"}, "callbackKey": "k-1",
		"filterLogic": json.RawMessage(`{"==":[{"var":"event.n"},1]}`), "timeoutMs": 3000})
	got := s.must(s.call("PATCH", "/v1/subscriptions/"+sub.ID, app.Key, map[string]any{
		"url": newR.URL + "/v2", "eventTypes": []string{"a", "b"}, "filterLogic": nil, "callbackKey": "",
		"retryPolicy": map[string]any{"maxAttempts": 3}}), http.StatusOK).Data()
	if got["url"] != newR.URL+"/v2" || len(got["eventTypes"].([]any)) != 2 || got["filterLogic"] != nil ||
		got["callbackKeySet"] != false || got["timeoutMs"] != float64(3000) ||
		got["retryPolicy"].(map[string]any)["maxAttempts"] != float64(3) {
		t.Errorf("after update: %v", got)
	}
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "upd-1", "type": "b", "data": map[string]any{"n": 2}}), http.StatusCreated)
	s.waitDeliveries(app.Key, "upd-1", 1, 20*time.Second)
	if oldR.Count() != 0 || newR.Count() != 1 {
		t.Fatalf("requests: old %d, new %d", oldR.Count(), newR.Count())
	}
	req := newR.Requests()[0]
	if req.Header.Get("Authorization") != "" {
		t.Errorf("removed callback key still sent: %q", req.Header.Get("Authorization"))
	}
	if err := (signature.Verifier{Secret: sub.Secret}).Verify(req.Header, req.Body); err != nil {
		t.Errorf("secret changed by the update: %v", err)
	}
	for name, body := range map[string]any{
		"bad url":        map[string]any{"url": "gopher://x"},
		"no event types": map[string]any{"eventTypes": []string{}},
		"bad filter":     map[string]any{"filterLogic": json.RawMessage(`{"nope":[]}`)},
		"unknown field":  map[string]any{"secret": "whsec_AAAA"},
	} {
		if r := s.call("PATCH", "/v1/subscriptions/"+sub.ID, app.Key, body); r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	s.must(s.call("PATCH", "/v1/subscriptions/"+sub.ID, s.newApp("stranger2").Key, map[string]any{"contactEmail": ""}), http.StatusNotFound)
}
