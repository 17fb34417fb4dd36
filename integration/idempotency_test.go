package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/workflows"
)

func idemKey(k string) http.Header { return http.Header{"Idempotency-Key": {k}} }

// A creating POST retried with its Idempotency-Key gets the first answer again and creates
// nothing twice; the key with another body is refused; keys are per caller, kept sealed, and
// forgotten after 24 h by the retention schedule.
func TestIdempotencyKey(t *testing.T) {
	s := newStack(t)
	appBody := map[string]any{"name": "idem", "permissions": []string{}}
	first := s.must(s.callWith("POST", "/v1/apps", operatorKey, appBody, idemKey("app-1")), http.StatusCreated)
	again := s.must(s.callWith("POST", "/v1/apps", operatorKey, appBody, idemKey("app-1")), http.StatusCreated)
	if string(again.Raw) != string(first.Raw) || again.Header.Get("Idempotent-Replayed") != "true" ||
		first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("second answer %s (replayed %q), first %s", again.Raw, again.Header.Get("Idempotent-Replayed"), first.Raw)
	}
	var apps int
	if err := database.DB.Get(&apps, `SELECT count(*) FROM apps WHERE name = 'idem'`); err != nil || apps != 1 {
		t.Fatalf("%d apps named idem (%v), want 1", apps, err)
	}
	other := s.callWith("POST", "/v1/apps", operatorKey, map[string]any{"name": "idem other", "permissions": []string{}}, idemKey("app-1"))
	if other.Status != http.StatusUnprocessableEntity || other.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("same key, other body: %d %s", other.Status, other.Raw)
	}
	d := first.Data()
	app := testApp{ID: d["id"].(string), Key: d["apiKey"].(string), Secret: d["secret"].(string)}

	// An event without an id: retried with its key, one event, one delivery.
	recv := testenv.NewReceiver(nil)
	t.Cleanup(recv.Close)
	s.subscribe(app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"idem.test"}})
	ev := map[string]any{"type": "idem.test", "data": map[string]any{"n": 1}}
	e1 := s.must(s.callWith("POST", "/v1/events", app.Key, ev, idemKey("ev-1")), http.StatusCreated).Data()
	e2 := s.must(s.callWith("POST", "/v1/events", app.Key, ev, idemKey("ev-1")), http.StatusCreated).Data()
	if e1["id"] != e2["id"] {
		t.Errorf("retried publish made event %v, first %v", e2["id"], e1["id"])
	}
	// A one-off callback likewise.
	cb := map[string]any{"url": recv.URL + "/cb", "eventType": "idem.cb", "data": map[string]any{"n": 2}}
	c1 := s.must(s.callWith("POST", "/v1/callbacks", app.Key, cb, idemKey("cb-1")), http.StatusAccepted).Data()
	c2 := s.must(s.callWith("POST", "/v1/callbacks", app.Key, cb, idemKey("cb-1")), http.StatusAccepted).Data()
	if c1["requestId"] != c2["requestId"] {
		t.Errorf("retried callback made request %v, first %v", c2["requestId"], c1["requestId"])
	}
	eventually(t, 20*time.Second, "the event and the callback delivered", func() bool { return recv.Count() >= 2 })
	time.Sleep(500 * time.Millisecond)
	if n := recv.Count(); n != 2 {
		t.Errorf("receiver got %d requests, want 2 (one event, one callback)", n)
	}

	// Keys belong to their caller: another app's "ev-1" is its own.
	app2 := s.newApp("idem two")
	s.must(s.callWith("POST", "/v1/events", app2.Key, map[string]any{"type": "x"}, idemKey("ev-1")), http.StatusCreated)

	// The kept answer holds the app's secret, sealed like every stored secret.
	var stored []string
	if err := database.DB.Select(&stored, `SELECT response FROM idempotency_keys WHERE key = 'app-1'`); err != nil || len(stored) != 1 {
		t.Fatalf("stored answers %d (%v)", len(stored), err)
	}
	if strings.Contains(stored[0], app.Secret) || strings.Contains(stored[0], app.Key) {
		t.Error("the stored answer holds the app's secret or key in plain text")
	}

	// 24 h later the retention schedule forgets the key: it may then be used for another request.
	if _, err := database.DB.Exec(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'ev-1'`); err != nil {
		t.Fatal(err)
	}
	run, err := temporalClient(t).ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "retention/" + s.Cfg.TaskQueue + "/idem",
		TaskQueue: s.Cfg.TaskQueue}, workflows.RetentionWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := database.DB.Get(&left, `SELECT count(*) FROM idempotency_keys WHERE key = 'ev-1'`); err != nil || left != 0 {
		t.Fatalf("%d expired keys left (%v)", left, err)
	}
	s.must(s.callWith("POST", "/v1/events", app.Key, map[string]any{"type": "idem.test", "data": map[string]any{"n": 3}}, idemKey("ev-1")), http.StatusCreated)
}
