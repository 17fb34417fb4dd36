package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/internal/testenv"
)

// Reading an event's deliveries costs what the page holds, not what the event holds: with 5,500
// deliveries on one event (5,000 targets, 500 of them replayed), each page of 100 reads at most
// 101 rows of the deliveries table, the pages together list every delivery exactly once, and
// counting the targets up to 2,001 (the whole-event replay's check) stops there.
func TestEventDeliveryPagesReadTheirRowsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	tdb, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tdb.Drop(ctx) })
	d := tdb.DB
	for _, q := range []string{
		`INSERT INTO apps (id, name, secret) VALUES ('app-1', 'one', 'plain')`,
		`INSERT INTO events (id, client_id, app_id, type, payload, workflow_id)
			VALUES ('app-1/big', 'big', 'app-1', 't', '{}', 'event/big'), ('app-1/other', 'other', 'app-1', 't', '{}', 'event/other')`,
		// One-off callback deliveries: the target is the URL.
		`INSERT INTO deliveries (id, event_id, app_id, url, status)
			SELECT 'dlv-' || i, 'app-1/big', 'app-1', 'https://r.example/' || lpad(i::text, 5, '0'), 'succeeded'
			FROM generate_series(1, 5000) i`,
		`INSERT INTO deliveries (id, event_id, app_id, url, replay, status)
			SELECT 'dlv-' || i || '-r1', 'app-1/big', 'app-1', 'https://r.example/' || lpad(i::text, 5, '0'), 1, 'failed'
			FROM generate_series(1, 5000, 10) i`,
		`INSERT INTO deliveries (id, event_id, app_id, url, status)
			SELECT 'other-' || i, 'app-1/other', 'app-1', 'https://r.example/' || lpad(i::text, 5, '0'), 'succeeded'
			FROM generate_series(1, 5000) i`,
		`VACUUM ANALYZE`,
	} {
		if _, err := d.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const total = 5500
	// One connection, so that this backend's statistics are the queries' statistics (see
	// TestHotQueriesUseIndexes).
	d.SetMaxOpenConns(1)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var others int
		if err := d.GetContext(ctx, &others, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		if others == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d other backends still connected", others)
		}
	}
	// rowsRead is how many rows and index entries of deliveries the backend has read so far.
	rowsRead := func() int64 {
		t.Helper()
		if _, err := d.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `SELECT 1`); err != nil { // flushed at the end of a transaction
			t.Fatal(err)
		}
		var n int64
		if err := d.GetContext(ctx, &n, `SELECT
			(SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = 'deliveries') +
			(SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname = 'deliveries')`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	repo := db.NewRepo(d, nil)
	const limit = 100
	seen := map[string]int{}
	var after db.TargetCursor
	pages := 0
	for {
		before := rowsRead()
		page, err := repo.EventDeliveryPage(ctx, "app-1/big", after, limit+1)
		if err != nil {
			t.Fatal(err)
		}
		if read := rowsRead() - before; read > limit+2 {
			t.Fatalf("page %d read %d rows of deliveries for %d deliveries", pages, read, len(page))
		}
		pages++
		if len(page) > limit {
			page = page[:limit]
		}
		for _, dl := range page {
			if dl.EventID != "app-1/big" {
				t.Fatalf("page %d lists %s of %s", pages, dl.ID, dl.EventID)
			}
			seen[dl.ID]++
		}
		if len(page) < limit {
			break
		}
		last := page[len(page)-1]
		after = db.TargetCursor{Target: last.Target(), Replay: last.Replay}
	}
	if len(seen) != total {
		t.Errorf("the pages listed %d deliveries, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
	t.Logf("%d pages of %d", pages, limit)

	before := rowsRead()
	n, err := repo.CountEventTargets(ctx, "app-1/big", 2001)
	if err != nil || n != 2001 {
		t.Fatalf("targets counted up to 2001: %d, %v", n, err)
	}
	// 2,001 targets, 201 of them with a replay.
	if read := rowsRead() - before; read > 2300 {
		t.Errorf("counting 2,001 targets read %d rows of deliveries", read)
	}
	latest, err := repo.LatestDeliveries(ctx, "app-1/big", 20)
	if err != nil || len(latest) != 20 {
		t.Fatalf("latest: %d, %v", len(latest), err)
	}
	for i, dl := range latest {
		// Targets 1, 11 (lpad order: 00001, 00002, ...): every tenth from 1 has a replay.
		if want := i%10 == 0; (dl.Replay == 1) != want {
			t.Errorf("latest delivery %d to %s is replay %d", i, dl.URL, dl.Replay)
		}
	}
}
