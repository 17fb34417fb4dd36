package integration

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
)

// maxInWindow is the most requests any window of length w holds.
func maxInWindow(at []time.Time, w time.Duration) int {
	best := 0
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < w; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}

// A subscription's rateLimit and maxInFlight hold across two hookd processes (API and worker
// each) sharing a task queue, deliveries beyond them wait without an attempt counted, and other
// subscriptions of the same events run at full speed.
func TestThrottlingHoldsAcrossProcesses(t *testing.T) {
	var queue string
	s := newStack(t, func(c *config.Config) { queue = c.TaskQueue })
	s2 := newStack(t, func(c *config.Config) { c.TaskQueue = queue })
	app := s.newApp("throttle")

	var mu sync.Mutex
	arrivals := map[string][]time.Time{}
	var inFlight, maxSeen atomic.Int32
	recv := testenv.NewReceiver(func(_ int, r *http.Request) (int, http.Header, string) {
		mu.Lock()
		arrivals[r.URL.Path] = append(arrivals[r.URL.Path], time.Now())
		mu.Unlock()
		if r.URL.Path == "/narrow" {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := maxSeen.Load(); n > m && !maxSeen.CompareAndSwap(m, n); m = maxSeen.Load() {
			}
			time.Sleep(300 * time.Millisecond)
		}
		return http.StatusOK, nil, "ok"
	})
	t.Cleanup(recv.Close)
	slow := s.subscribe(app.Key, map[string]any{"url": recv.URL + "/slow", "eventTypes": []string{"t"}, "rateLimit": 5})
	narrow := s.subscribe(app.Key, map[string]any{"url": recv.URL + "/narrow", "eventTypes": []string{"t"}, "maxInFlight": 2})
	s.subscribe(app.Key, map[string]any{"url": recv.URL + "/fast", "eventTypes": []string{"t"}})
	got := s.must(s.call("GET", "/v1/subscriptions/"+slow.ID, app.Key, nil), http.StatusOK).Data()
	if got["rateLimit"] != float64(5) {
		t.Fatalf("subscription shows rateLimit %v", got["rateLimit"])
	}

	const n = 20
	start := time.Now()
	for i := range n {
		api := s
		if i%2 == 1 {
			api = s2
		}
		api.must(api.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("th-%d", i), "type": "t"}), http.StatusCreated)
	}
	// A delivery held back by maxInFlight asks again after 1 s, doubling to once a minute (README
	// Throttling): on a loaded machine the last ones may sleep up to a minute after the endpoint
	// frees up, so each event gets two of those.
	for i := range n {
		s.waitDeliveries(app.Key, fmt.Sprintf("th-%d", i), 3, 150*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/slow", "/narrow", "/fast"} {
		if len(arrivals[path]) != n {
			t.Errorf("%s got %d requests, want %d", path, len(arrivals[path]), n)
		}
	}
	// 5/s: no second holds more than 5 (+1 for a window that catches both ends), and 20 take ≥ 3.5 s.
	slowAt := arrivals["/slow"]
	if m := maxInWindow(slowAt, time.Second); m > 6 {
		t.Errorf("/slow got %d requests within one second, rateLimit 5", m)
	}
	if span := slowAt[len(slowAt)-1].Sub(slowAt[0]); span < 3500*time.Millisecond {
		t.Errorf("/slow's 20 requests took %s, want ≥ 3.8 s at 5/s", span)
	}
	if m := maxSeen.Load(); m > 2 {
		t.Errorf("/narrow had %d requests in flight, maxInFlight 2", m)
	}
	fastAt := arrivals["/fast"]
	if last := fastAt[len(fastAt)-1].Sub(start); last > 3*time.Second {
		t.Errorf("/fast's last request came %s after the first publish: the throttled subscriptions held it back", last)
	}
	// Waiting cost no attempt: every delivery succeeded at its first.
	for i := range n {
		for _, d := range s.eventDeliveries(app.Key, fmt.Sprintf("th-%d", i)) {
			if d["status"] != "succeeded" || d["attempts"] != float64(1) {
				t.Errorf("delivery %v: %v after %v attempts", d["id"], d["status"], d["attempts"])
			}
		}
	}
	// PATCH null removes a limit; a limit of 0 is refused.
	s.must(s.call("PATCH", "/v1/subscriptions/"+narrow.ID, app.Key, map[string]any{"maxInFlight": 0}), http.StatusBadRequest)
	if v := s.must(s.call("PATCH", "/v1/subscriptions/"+narrow.ID, app.Key, map[string]any{"maxInFlight": nil}), http.StatusOK).Data(); v["maxInFlight"] != nil {
		t.Errorf("maxInFlight after PATCH null: %v", v["maxInFlight"])
	}
}

// A 429 slows the whole endpoint down, not only the delivery that got it: for its Retry-After no
// delivery to that subscription is attempted, and those waiting cost no attempt.
func TestTooManyRequestsPausesTheEndpoint(t *testing.T) {
	s := newStack(t)
	app := s.newApp("429")
	var first atomic.Bool
	var mu sync.Mutex
	var at []time.Time
	recv := testenv.NewReceiver(func(_ int, r *http.Request) (int, http.Header, string) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if first.CompareAndSwap(false, true) {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}}, "slow down"
		}
		return http.StatusOK, nil, "ok"
	})
	t.Cleanup(recv.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"p"},
		"retryPolicy": map[string]any{"initialIntervalMs": 100, "maxIntervalMs": 5000, "maxAttempts": 5}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "p-0", "type": "p"}), http.StatusCreated)
	eventually(t, 10*time.Second, "the 429", first.Load)
	time.Sleep(100 * time.Millisecond)
	if p := s.must(s.call("GET", "/v1/subscriptions/"+sub.ID, app.Key, nil), http.StatusOK).Data()["pausedUntil"]; p == nil {
		t.Error("the subscription shows no pausedUntil after a 429")
	}
	for i := 1; i <= 3; i++ {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("p-%d", i), "type": "p"}), http.StatusCreated)
	}
	for i := 0; i <= 3; i++ {
		ds := s.waitDeliveries(app.Key, fmt.Sprintf("p-%d", i), 1, 30*time.Second)
		want := float64(1)
		if i == 0 {
			want = 2
		}
		if ds[0]["status"] != "succeeded" || ds[0]["attempts"] != want {
			t.Errorf("p-%d: %v after %v attempts, want succeeded after %v", i, ds[0]["status"], ds[0]["attempts"], want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 5 {
		t.Fatalf("receiver got %d requests, want 5 (one 429, four successes)", len(at))
	}
	for _, a := range at[1:] {
		if gap := a.Sub(at[0]); gap < 1900*time.Millisecond {
			t.Errorf("a request came %s after the 429 with Retry-After 2", gap)
		}
	}
}
