package activities

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/internal/testenv"
)

// A fan-out page that reserves a throttled subscription's slot and lease and then finds the
// delivery's first attempt claimed by another run of the page gives both back: the subscription's
// next send is not held back by a send that was never made (a rate of 1/min lost a minute, a
// maxInFlight of 1 was full until the lease expired).
func TestFanOutThatLosesItsClaimReleasesTheSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	tdb, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tdb.Drop(ctx) })
	for _, q := range []string{
		`INSERT INTO apps (id, name, secret) VALUES ('app-1', 'one', 'plain')`,
		`INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, event_types, rate_limit, max_in_flight)
			VALUES ('sub-1', 'app-1', 'app-1', 'http://127.0.0.1:1/hook', 'whsec_plain', '{t}', 1.0/60, 1)`,
	} {
		if _, err := tdb.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	repo := db.NewRepo(tdb.DB, nil)
	ev, _, err := repo.InsertEvent(ctx, db.Event{ID: "app-1/e1", AppID: "app-1", Type: "t", Payload: types.JSONText(`{}`), WorkflowID: "wf/e1"})
	if err != nil {
		t.Fatal(err)
	}
	// Another run of this page created the delivery and claimed its first attempt (it is making
	// it now: the delivery's count moves only when the attempt is recorded).
	id := delivery.DeliveryID(ev.ID, "sub-1", 0)
	if _, err := repo.EnsureDeliveries(ctx, []db.Delivery{{ID: id, EventID: ev.ID, AppID: "app-1", URL: "http://127.0.0.1:1/hook",
		SubscriptionID: nullString("sub-1"), WorkflowID: delivery.DeliveryWorkflowID(ev.ID, "sub-1", 0)}}, nil, ""); err != nil {
		t.Fatal(err)
	}
	if won, err := repo.ClaimAttempts(ctx, []db.Claim{{DeliveryID: id, Attempt: 1}}); err != nil || !won[id] {
		t.Fatalf("claim by the other run: %v %v", won, err)
	}

	a := &Activities{Repo: repo, Config: config.Config{FanOutConcurrency: 4, FanOutPageSize: 10},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := a.runPage(pctx, ev, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.recovered) != 1 || p.recovered[0] != id {
		t.Fatalf("the page did not find its claim lost: recovered %v, retries %+v", p.recovered, p.retries)
	}
	var leases int
	if err := tdb.DB.GetContext(ctx, &leases, `SELECT count(*) FROM throttle_leases WHERE subscription_id = 'sub-1'`); err != nil {
		t.Fatal(err)
	}
	if leases != 0 {
		t.Errorf("%d leases left by a send never made", leases)
	}
	sub, err := repo.GetSubscription(ctx, db.AnyApp(), "sub-1")
	if err != nil {
		t.Fatal(err)
	}
	slot, err := repo.AcquireSlot(ctx, sub, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slot.Granted || time.Until(slot.At) > time.Second {
		t.Errorf("the next send to the subscription waits %v (granted %v): its slot went to a send never made", slot.Wait, slot.Granted)
	}
}
