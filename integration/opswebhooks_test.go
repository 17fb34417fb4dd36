package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// opsEvent is one operational webhook as its receiver got it.
type opsEvent struct {
	Type    string         `json:"eventType"`
	Service string         `json:"service"`
	AppID   string         `json:"appId"`
	Data    map[string]any `json:"data"`
}

// opsEvents decodes what an operations receiver got, checking each signature with the app's secret.
func opsEvents(t *testing.T, r *testenv.Receiver, secret string) []opsEvent {
	t.Helper()
	var out []opsEvent
	for _, req := range r.Requests() {
		if err := (signature.Verifier{Secret: secret}).Verify(req.Header, req.Body); err != nil {
			t.Errorf("operational webhook not signed with the app's secret: %v", err)
		}
		var e opsEvent
		if err := json.Unmarshal(req.Body, &e); err != nil {
			t.Fatalf("operational webhook body %s: %v", req.Body, err)
		}
		out = append(out, e)
	}
	return out
}

func waitOps(t *testing.T, r *testenv.Receiver, secret string, n int) []opsEvent {
	t.Helper()
	eventually(t, 30*time.Second, "operational webhooks", func() bool { return r.Count() >= n })
	time.Sleep(300 * time.Millisecond) // one more would be a duplicate
	evs := opsEvents(t, r, secret)
	if len(evs) != n {
		t.Fatalf("%d operational webhooks, want %d: %+v", len(evs), n, evs)
	}
	return evs
}

// An app with an operations URL hears, signed and durably, when one of its deliveries gives up,
// when its subscription is disabled (by failures, by its owner, by the publisher's registry) or
// enabled, and when a replay recovers a failed delivery. E-mails still go out.
func TestOperationalWebhooks(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.DisableAfterFailures = 1 })
	ops := testenv.NewReceiver(nil)
	t.Cleanup(ops.Close)
	app := s.newApp("ops subscriber")
	stranger := s.newApp("ops stranger")
	s.must(s.call("PATCH", "/v1/apps/"+app.ID, stranger.Key, map[string]any{"operationsUrl": ops.URL + "/x"}), http.StatusForbidden)
	s.must(s.call("PATCH", "/v1/apps/"+app.ID, app.Key, map[string]any{"operationsUrl": "not a url"}), http.StatusBadRequest)
	s.must(s.call("PATCH", "/v1/apps/"+app.ID, app.Key, map[string]any{}), http.StatusBadRequest)
	got := s.must(s.call("PATCH", "/v1/apps/"+app.ID, app.Key, map[string]any{"operationsUrl": ops.URL + "/ops"}), http.StatusOK).Data()
	if got["operationsUrl"] != ops.URL+"/ops" {
		t.Fatalf("PATCH answered %v", got)
	}

	var up atomic.Bool
	recv := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		if up.Load() {
			return http.StatusOK, nil, "ok"
		}
		return http.StatusInternalServerError, nil, "down for maintenance"
	})
	t.Cleanup(recv.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": recv.URL + "/hook", "eventTypes": []string{"invoice.paid"},
		"contactEmail": "ops@example.test", "retryPolicy": map[string]any{"initialIntervalMs": 50, "backoffCoefficient": 1, "maxAttempts": 2}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "ops-1", "type": "invoice.paid"}), http.StatusCreated)
	failed := s.waitDeliveries(app.Key, "ops-1", 1, 30*time.Second)[0]

	// The delivery gave up and, with DisableAfterFailures 1, disabled its subscription.
	evs := waitOps(t, ops, app.Secret, 2)
	byType := map[string]opsEvent{}
	for _, e := range evs {
		if e.Service != "hookd.operations" || e.AppID != app.ID {
			t.Errorf("operational webhook %+v", e)
		}
		byType[e.Type] = e
	}
	f := byType["delivery.failed"].Data
	if f["deliveryId"] != failed["id"] || f["subscriptionId"] != sub.ID || f["status"] != "failed" || f["eventId"] != "ops-1" ||
		f["attempts"] != float64(2) || f["lastStatus"] != float64(500) || !strings.Contains(f["reason"].(string), "down for maintenance") {
		t.Errorf("delivery.failed says %v", f)
	}
	d := byType["subscription.disabled"].Data
	if d["subscriptionId"] != sub.ID || d["cause"] != "failures" || d["active"] != false || !strings.Contains(d["reason"].(string), "failed deliveries") {
		t.Errorf("subscription.disabled says %v", d)
	}
	eventually(t, 10*time.Second, "the e-mails too", func() bool { return len(s.SMTP.Messages()) >= 2 })

	// Its owner enables it: subscription.enabled, once (enabling it again changes nothing).
	up.Store(true)
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/enable", app.Key, nil), http.StatusOK)
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/enable", app.Key, nil), http.StatusOK)
	evs = waitOps(t, ops, app.Secret, 3)
	if e := evs[2]; e.Type != "subscription.enabled" || e.Data["subscriptionId"] != sub.ID || e.Data["cause"] != "owner" || e.Data["active"] != true {
		t.Errorf("third operational webhook %+v", e)
	}

	// A replay of the failed delivery succeeds: delivery.recovered names the replay.
	replay := s.must(s.call("POST", "/v1/deliveries/"+failed["id"].(string)+"/replay", app.Key, nil), http.StatusAccepted).Data()
	evs = waitOps(t, ops, app.Secret, 4)
	if e := evs[3]; e.Type != "delivery.recovered" || e.Data["deliveryId"] != replay["id"] || e.Data["status"] != "succeeded" ||
		e.Data["replay"] != float64(1) || e.Data["lastStatus"] != float64(200) {
		t.Errorf("fourth operational webhook %+v", e)
	}

	// Disabled by its owner, then by the publisher removing the event it subscribed to.
	s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/disable", app.Key, nil), http.StatusOK)
	evs = waitOps(t, ops, app.Secret, 5)
	if e := evs[4]; e.Type != "subscription.disabled" || e.Data["cause"] != "owner" {
		t.Errorf("fifth operational webhook %+v", e)
	}
	pub := s.newApp("ops publisher")
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "usercreated", "eventType": "usercreatedevent"}}}), http.StatusCreated)
	reg := s.subscribe(app.Key, map[string]any{"url": recv.URL + "/reg", "appId": pub.ID, "topic": "participant", "eventName": "usercreated"})
	s.must(s.call("POST", "/v1/topics/participant/events/bulk-delete", pub.Key, map[string]any{"events": []string{"usercreated"}}), http.StatusOK)
	evs = waitOps(t, ops, app.Secret, 6)
	if e := evs[5]; e.Type != "subscription.disabled" || e.Data["subscriptionId"] != reg.ID || e.Data["cause"] != "registry" ||
		!strings.Contains(e.Data["reason"].(string), "usercreated") {
		t.Errorf("sixth operational webhook %+v", e)
	}
}

// An operations URL that fails is retried and reported by e-mail like any callback, but its own
// failure raises no operational webhook (which would go to the same failing URL, for ever).
func TestOperationalWebhookFailureDoesNotLoop(t *testing.T) {
	s := newStack(t, func(c *config.Config) {
		c.Retry = config.RetryDefaults{InitialInterval: 50 * time.Millisecond, BackoffCoefficient: 1, MaxInterval: time.Second,
			MaxAttempts: 2, MaxDuration: time.Minute}
	})
	ops := testenv.NewReceiver(testenv.Statuses(http.StatusBadGateway))
	t.Cleanup(ops.Close)
	recv := testenv.NewReceiver(testenv.Statuses(http.StatusInternalServerError))
	t.Cleanup(recv.Close)
	app := s.newApp("ops loop")
	s.must(s.call("PATCH", "/v1/apps/"+app.ID, app.Key, map[string]any{"operationsUrl": ops.URL + "/ops"}), http.StatusOK)
	s.subscribe(app.Key, map[string]any{"url": recv.URL + "/hook", "eventTypes": []string{"loop"},
		"retryPolicy": map[string]any{"initialIntervalMs": 50, "backoffCoefficient": 1, "maxAttempts": 1}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "loop-1", "type": "loop"}), http.StatusCreated)
	s.waitDeliveries(app.Key, "loop-1", 1, 30*time.Second)
	// delivery.failed: 2 attempts at the operations URL, then its own failure e-mail; nothing more.
	eventually(t, 30*time.Second, "the operational webhook's failure e-mail", func() bool {
		for _, m := range s.SMTP.Messages() {
			if strings.Contains(m.Data, "delivery.failed") && strings.Contains(m.Data, ops.URL) {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second)
	if n := ops.Count(); n != 2 {
		t.Errorf("operations URL got %d requests, want 2 (one operational webhook, 2 attempts)", n)
	}
	for _, e := range opsEvents(t, ops, app.Secret) {
		if e.Type != "delivery.failed" || e.Data["eventId"] != "loop-1" {
			t.Errorf("operational webhook %+v", e)
		}
	}
}
