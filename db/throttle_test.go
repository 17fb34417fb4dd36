package db_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/internal/testenv"
)

// A cancelled slot is free again (its lease ended, the rate's next slot moved back) unless a
// later grant followed it: then only its lease ends, and the later grant keeps its time.
func TestCancelSlot(t *testing.T) {
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
		`INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, event_types) VALUES ('sub-1', 'app-1', 'app-1', 'http://x.test/', 'whsec_plain', '{t}')`,
	} {
		if _, err := tdb.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	repo := db.NewRepo(tdb.DB, nil)
	sub := db.Subscription{ID: "sub-1"}
	sub.RateLimit = sql.NullFloat64{Float64: 1.0 / 60, Valid: true} // a slot a minute
	sub.MaxInFlight = sql.NullInt32{Int32: 2, Valid: true}
	leases := func() (n int) {
		t.Helper()
		if err := tdb.DB.GetContext(ctx, &n, `SELECT count(*) FROM throttle_leases`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	acquire := func(within time.Duration) db.Slot {
		t.Helper()
		s, err := repo.AcquireSlot(ctx, sub, within, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	first := acquire(time.Second)
	if !first.Granted || leases() != 1 {
		t.Fatalf("first slot %+v, %d leases", first, leases())
	}
	if err := repo.CancelSlot(ctx, sub.ID, first); err != nil {
		t.Fatal(err)
	}
	if leases() != 0 {
		t.Errorf("%d leases after the cancel", leases())
	}
	again := acquire(time.Second)
	if !again.Granted || time.Until(again.At) > time.Second {
		t.Fatalf("the cancelled slot is not free again: %+v", again)
	}

	// again is followed by a grant a minute later; cancelling again frees its lease only.
	later := acquire(0)
	if !later.Granted || time.Until(later.At) < 50*time.Second {
		t.Fatalf("later slot %+v", later)
	}
	if err := repo.CancelSlot(ctx, sub.ID, again); err != nil {
		t.Fatal(err)
	}
	if leases() != 1 {
		t.Errorf("%d leases, want the later grant's only", leases())
	}
	if s := acquire(0); !s.Granted || time.Until(s.At) < 110*time.Second {
		t.Errorf("a grant after the later one is at +%v, before it", time.Until(s.At))
	}
	if err := repo.CancelSlot(ctx, sub.ID, db.Slot{}); err != nil {
		t.Errorf("cancelling no slot: %v", err)
	}
}
