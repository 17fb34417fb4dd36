package integration

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// replay -failed replays only what a replay can help: not a failure a recover already replayed
// (successfully), nor one whose subscription is disabled; it says what it skipped and why. Before,
// it re-sent both and reported "replayed 3 of 3".
func TestReplayFailedSkipsWhatNeedsNoReplay(t *testing.T) {
	s := newStack(t)
	app := s.newApp("replay failed")
	var healthy atomic.Bool
	a := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		if healthy.Load() {
			return 200, nil, "ok"
		}
		return 500, nil, "broken"
	})
	t.Cleanup(a.Close)
	b := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "broken" })
	t.Cleanup(b.Close)
	one := map[string]any{"maxAttempts": 1}
	s.subscribe(app.Key, map[string]any{"url": a.URL, "eventTypes": []string{"r.one", "r.two"}, "retryPolicy": one})
	subB := s.subscribe(app.Key, map[string]any{"url": b.URL, "eventTypes": []string{"r.three"}, "retryPolicy": one})
	since := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
	ids := map[string]string{}
	for _, ev := range []struct{ id, typ string }{{"rf-1", "r.one"}, {"rf-2", "r.two"}, {"rf-3", "r.three"}} {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": ev.id, "type": ev.typ}), http.StatusCreated)
		ds := s.waitDeliveries(app.Key, ev.id, 1, 20*time.Second)
		if ds[0]["status"] != "failed" {
			t.Fatalf("%s: %v", ev.id, ds[0])
		}
		ids[ev.id] = ds[0]["id"].(string)
	}
	healthy.Store(true)
	// A recover of r.one replays rf-1, which succeeds.
	time.Sleep(10 * time.Millisecond)
	s.must(s.call("POST", "/v1/deliveries/recover", app.Key, map[string]any{"since": since, "eventType": "r.one"}), http.StatusAccepted)
	eventually(t, 20*time.Second, "rf-1 recovered", func() bool {
		ds := s.eventDeliveries(app.Key, "rf-1")
		return len(ds) == 2 && (ds[0]["status"] == "succeeded" || ds[1]["status"] == "succeeded")
	})
	s.must(s.call("POST", "/v1/subscriptions/"+subB.ID+"/disable", app.Key, nil), http.StatusOK)
	postsA, postsB := a.Count(), b.Count()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookdBinary(t), "replay", "-failed")
	cmd.Env = append(environWithout("HOOKD_ENCRYPTION_KEY"), "HOOKD_API_URL="+s.URL, "HOOKD_API_KEY="+app.Key)
	b2, err := cmd.CombinedOutput()
	out := string(b2)
	if err != nil {
		t.Fatalf("hookd replay -failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"skipped " + ids["rf-1"] + ": replayed already: replay 1 (",
		") is succeeded",
		"skipped " + ids["rf-3"] + ": its subscription " + subB.ID + " is disabled (disabled by its owner)",
		"replayed 1 of 1 deliveries; skipped 2 failed ones",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	s.waitDeliveries(app.Key, "rf-2", 2, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if a.Count() != postsA+1 || b.Count() != postsB {
		t.Errorf("POSTs after replay -failed: %d to A (want 1, rf-2's replay), %d to B (want 0)", a.Count()-postsA, b.Count()-postsB)
	}
	if n := len(s.eventDeliveries(app.Key, "rf-1")); n != 2 {
		t.Errorf("rf-1 has %d deliveries, want 2 (the original and the recover's replay)", n)
	}
}
