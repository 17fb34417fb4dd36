package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/workflows"
)

// The retention Schedule exists for the worker's queue and, when it runs, deletes the events older
// than HOOKD_RETENTION with their deliveries and attempts, but no event with a pending delivery and
// nothing recent.
func TestRetentionScheduleDeletesOldRows(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.Retention, c.RetentionEvery = 30*24*time.Hour, time.Hour })
	app := s.newApp("retention")
	ok := testenv.NewReceiver(nil)
	t.Cleanup(ok.Close)
	down := testenv.NewReceiver(testenv.Statuses(503))
	t.Cleanup(down.Close)
	s.subscribe(app.Key, map[string]any{"url": ok.URL, "eventTypes": []string{"kept", "old"}})
	s.subscribe(app.Key, map[string]any{"url": down.URL, "eventTypes": []string{"pending"},
		"retryPolicy": map[string]any{"initialIntervalMs": 60_000, "maxAttempts": 100, "maxDurationMs": 3_600_000}})
	for _, e := range [][2]string{{"ret-old", "old"}, {"ret-old-2", "old"}, {"ret-new", "kept"}, {"ret-pending", "pending"}} {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": e[0], "type": e[1]}), http.StatusCreated)
	}
	s.waitDeliveries(app.Key, "ret-old", 1, 20*time.Second)
	s.waitDeliveries(app.Key, "ret-old-2", 1, 20*time.Second)
	s.waitDeliveries(app.Key, "ret-new", 1, 20*time.Second)
	eventually(t, 20*time.Second, "first attempt of ret-pending", func() bool { return down.Count() > 0 })
	if _, err := database.DB.Exec(`UPDATE events SET received_at = now() - interval '40 days'
		WHERE app_id = $1 AND client_id IN ('ret-old', 'ret-old-2', 'ret-pending')`, app.ID); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	h := temporalClient(t).ScheduleClient().GetHandle(ctx, workflows.RetentionScheduleID(s.Cfg.TaskQueue))
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatalf("retention schedule: %v", err)
	}
	if iv := desc.Schedule.Spec.Intervals; len(iv) != 1 || iv[0].Every != time.Hour {
		t.Errorf("schedule spec %+v", desc.Schedule.Spec)
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	count := func(query string) int {
		var n int
		if err := database.DB.Get(&n, query, app.ID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 30*time.Second, "old events deleted", func() bool {
		return count(`SELECT count(*) FROM events WHERE app_id = $1`) == 2
	})
	var left []string
	if err := database.DB.Select(&left, `SELECT client_id FROM events WHERE app_id = $1 ORDER BY client_id`, app.ID); err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != "ret-new" || left[1] != "ret-pending" {
		t.Errorf("events left: %v", left)
	}
	if n := count(`SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.app_id = $1`); n != 2 {
		t.Errorf("%d deliveries left, want those of ret-new and ret-pending", n)
	}
	if n := count(`SELECT count(*) FROM delivery_attempts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id) AND $1 <> ''`); n != 0 {
		t.Errorf("%d attempts without a delivery", n)
	}
	s.must(s.call("GET", "/v1/events/ret-old", app.Key, nil), http.StatusNotFound)
}
