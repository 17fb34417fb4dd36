package activities

import (
	"testing"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
)

func TestBackoff(t *testing.T) {
	p := delivery.Policy{InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := p.Backoff(10_000); got != 10*time.Second {
		t.Errorf("Backoff(huge) = %s", got)
	}
}

func TestPolicyFor(t *testing.T) {
	c := config.Config{AttemptTimeout: 20 * time.Second, Retry: config.RetryDefaults{InitialInterval: 5 * time.Second,
		BackoffCoefficient: 2, MaxInterval: time.Hour, MaxAttempts: 30, MaxDuration: 24 * time.Hour}}
	if p := delivery.PolicyFor(c, db.RetryPolicy{}); p.InitialInterval != 5*time.Second || p.MaxAttempts != 30 || p.Timeout != 20*time.Second {
		t.Errorf("defaults: %+v", p)
	}
	initial, attempts, timeout := int64(120_000), int32(3), int64(1500)
	p := delivery.PolicyFor(c, db.RetryPolicy{InitialIntervalMS: &initial, MaxAttempts: &attempts, TimeoutMS: &timeout})
	if p.InitialInterval != 2*time.Minute || p.MaxAttempts != 3 || p.Timeout != 1500*time.Millisecond || p.MaxInterval != time.Hour {
		t.Errorf("overrides: %+v", p)
	}
	// Temporal refuses a maximum interval below the initial one.
	c.Retry.MaxInterval = time.Second
	if p := delivery.PolicyFor(c, db.RetryPolicy{InitialIntervalMS: &initial}); p.MaxInterval != 2*time.Minute {
		t.Errorf("max interval %s below initial %s", p.MaxInterval, p.InitialInterval)
	}
}

func TestFillPath(t *testing.T) {
	cases := map[string]string{
		"/app/api/v2/users/{userId}": "/app/api/v2/users/u-1",
		"/orgs/{org}/users/{userId}": "/orgs/7/users/u-1",
		"/users/{missing}":           "/users/{missing}",
		"/static":                    "/static",
	}
	for in, want := range cases {
		if got := fillPath(in, []byte(`{"userId":"u-1","org":7}`)); got != want {
			t.Errorf("fillPath(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestIDsAreStableAndReadable(t *testing.T) {
	if delivery.DeliveryID("e", "s", 0) != delivery.DeliveryID("e", "s", 0) || delivery.DeliveryID("e", "s", 0) == delivery.DeliveryID("e", "s", 1) {
		t.Error("delivery ids are not derived from (event, target, replay)")
	}
	if got := delivery.DeliveryWorkflowID("evt-1", "sub_1", 2); got != "delivery/evt-1/sub_1/replay-2" {
		t.Errorf("workflow id %s", got)
	}
}

// Retry-After waits longer than the backoff, but never beyond the maximum interval or past the
// maximum duration.
func TestNextDelay(t *testing.T) {
	p := delivery.Policy{InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: time.Hour, MaxDuration: 24 * time.Hour}
	first := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		n          int
		retryAfter time.Duration
		now        time.Time
		want       time.Duration
		inTime     bool
	}{
		{"backoff", 3, 0, first.Add(time.Minute), 4 * time.Second, true},
		{"retry-after longer", 1, 90 * time.Second, first.Add(time.Minute), 90 * time.Second, true},
		{"retry-after shorter", 3, time.Second, first.Add(time.Minute), 4 * time.Second, true},
		{"retry-after capped", 1, 99999999 * time.Second, first.Add(time.Minute), time.Hour, true},
		{"past the max duration", 1, 30 * time.Minute, first.Add(23*time.Hour + 45*time.Minute), 30 * time.Minute, false},
	}
	for _, c := range cases {
		d, ok := p.NextDelay(c.n, c.retryAfter, first, c.now)
		if d != c.want || ok != c.inTime {
			t.Errorf("%s: NextDelay = %s, %v; want %s, %v", c.name, d, ok, c.want, c.inTime)
		}
	}
}
