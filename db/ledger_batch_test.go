package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/internal/testenv"
)

// Concurrent writes share statements (group commit) and still behave as if each ran alone: of
// publishes racing with one id exactly one stores it; of fan-outs racing over one delivery exactly
// one claims its first attempt; every attempt is recorded once; and PostgreSQL runs far fewer
// statements than there were calls.
func TestConcurrentWritesShareStatements(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	tdb, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tdb.Drop(ctx) })
	if _, err := tdb.DB.ExecContext(ctx, `INSERT INTO apps (id, name, secret) VALUES ('app-1', 'one', 'plain')`); err != nil {
		t.Fatal(err)
	}
	repo := db.NewRepo(tdb.DB, nil)
	// Statements that wrote rows, told by the transactions that did: each ran alone.
	transactions := func(query string) int {
		t.Helper()
		var n int
		if err := tdb.DB.GetContext(ctx, &n, query); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// goTogether starts a phase's calls while their tables are locked against writes, so the first
	// statement waits and every call that arrives meanwhile joins the next one: the calls overlap
	// however slowly a loaded machine (or -race) lets them leave the barrier.
	goTogether := func(start chan struct{}) {
		t.Helper()
		tx, err := tdb.DB.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `LOCK TABLE events, deliveries, delivery_attempts IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		close(start)
		time.Sleep(500 * time.Millisecond)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	const events, copies = 300, 2 // each event published twice, at the same time
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := map[string]int{}
	// Each phase's calls wait at a barrier and go at once, behind a lock (goTogether), so they
	// overlap however busy the machine is (under -race on 2 cores, goroutines often did not).
	start := make(chan struct{})
	for i := range events * copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("app-1/e%03d", i%events)
			ev, inserted, err := repo.InsertEvent(ctx, db.Event{ID: id, AppID: "app-1", Type: "t", Payload: types.JSONText(fmt.Sprintf(`{"n":%d}`, i%events)), WorkflowID: "wf/" + id})
			if err != nil {
				t.Error(err)
				return
			}
			if inserted {
				if ev.ID != id || string(ev.Payload) != fmt.Sprintf(`{"n": %d}`, i%events) || ev.Seq == 0 {
					t.Errorf("stored %+v for %s", ev, id)
				}
				mu.Lock()
				stored[id]++
				mu.Unlock()
			}
		}()
	}
	goTogether(start)
	wg.Wait()
	inserts := transactions(`SELECT count(DISTINCT txid) FROM events`)
	for i := range events {
		if id := fmt.Sprintf("app-1/e%03d", i); stored[id] != 1 {
			t.Errorf("%s stored by %d calls, want 1", id, stored[id])
		}
	}
	var rows int
	if err := tdb.DB.GetContext(ctx, &rows, `SELECT count(*) FROM events`); err != nil || rows != events {
		t.Fatalf("events: %d rows, %v", rows, err)
	}

	// Two fan-outs of each event at once, each ensuring its one delivery with a claim.
	claimed := map[string]int{}
	start = make(chan struct{})
	for i := range events * copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ev := fmt.Sprintf("app-1/e%03d", i%events)
			d := db.Delivery{ID: "dlv-" + ev, EventID: ev, AppID: "app-1", URL: "http://x/", WorkflowID: "d/" + ev,
				SubscriptionID: sql.NullString{}}
			ds, err := repo.EnsureDeliveries(ctx, []db.Delivery{d}, map[string]bool{d.ID: true}, ev)
			if err != nil || len(ds) != 1 || ds[0].ID != d.ID {
				t.Errorf("ensure %s: %+v, %v", d.ID, ds, err)
				return
			}
			if ds[0].Claimed {
				mu.Lock()
				claimed[d.ID]++
				mu.Unlock()
				// The claimer records its attempt, racing with the other events' records.
				_, err := repo.RecordAttempts(ctx, []db.Attempt{{DeliveryID: d.ID, Attempt: 1, RequestHeaders: types.JSONText(`{}`),
					ResponseStatus: sql.NullInt32{Int32: 200, Valid: true}, StartedAt: time.Now(), Succeeded: true}}, "")
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	goTogether(start)
	wg.Wait()
	// The ensures marked the events dispatched, the records completed the attempts.
	ensures := transactions(`SELECT count(DISTINCT xmin::text) FROM events`)
	records := transactions(`SELECT count(DISTINCT xmin::text) FROM delivery_attempts`)
	for i := range events {
		if id := fmt.Sprintf("dlv-app-1/e%03d", i); claimed[id] != 1 {
			t.Errorf("%s claimed by %d calls, want 1", id, claimed[id])
		}
	}
	var bad int
	if err := tdb.DB.GetContext(ctx, &bad, `SELECT
		(SELECT count(*) FROM deliveries WHERE status <> 'succeeded' OR attempts <> 1 OR last_status <> 200) +
		(SELECT count(*) FROM delivery_attempts WHERE state <> 'completed' OR response_status <> 200) +
		(SELECT count(*) FROM events WHERE dispatched_at IS NULL) +
		abs((SELECT count(*) FROM delivery_attempts) - $1)`, events); err != nil || bad != 0 {
		t.Fatalf("ledger: %d rows not as expected, %v", bad, err)
	}
	t.Logf("statements: %d for %d publishes, %d for %d ensures, %d for %d records", inserts, events*copies, ensures, events*copies, records, events)
	if inserts > events/2 || ensures > events/2 || records > events/2 {
		t.Errorf("calls did not share statements: %d for %d publishes, %d for %d ensures, %d for %d records",
			inserts, events*copies, ensures, events*copies, records, events)
	}
}
