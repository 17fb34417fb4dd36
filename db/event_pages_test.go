package db_test

import (
	"context"
	"testing"

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
	soleBackend(ctx, t, d)
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

// Polling costs a page, not the caller's history: a subscriber with 6,000 deliveries of 3,000
// events of another app (and 50 events of its own) polls them 100 at a time, each page reading at
// most a few hundred rows and index entries in all, and the pages together list every event
// exactly once, in poll order. Before, each page read every delivery the caller ever had.
func TestPollReadsAPageNotTheHistory(t *testing.T) {
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
		`INSERT INTO apps (id, name, secret) VALUES ('app-1', 'publisher', 'plain'), ('app-2', 'subscriber', 'plain')`,
		`INSERT INTO events (id, client_id, app_id, type, payload, workflow_id)
			SELECT 'app-1/e' || i, 'e' || i, 'app-1', 't', '{}', 'event/' || i FROM generate_series(1, 3000) i`,
		`INSERT INTO events (id, client_id, app_id, type, payload, workflow_id)
			SELECT 'app-2/own' || i, 'own' || i, 'app-2', 't', '{}', 'event/own' || i FROM generate_series(1, 50) i`,
		// Two subscriptions of app-2 to each event, as fan-out pages write them (many statements).
		`DO $$ BEGIN FOR p IN 0..29 LOOP
			INSERT INTO deliveries (id, event_id, app_id, url, status)
			SELECT 'd-' || i || '-' || k, 'app-1/e' || i, 'app-2', 'https://r.example/' || k, 'succeeded'
			FROM generate_series(p * 100 + 1, p * 100 + 100) i, generate_series(1, 2) k;
		END LOOP; END $$`,
		`VACUUM ANALYZE`,
	} {
		if _, err := d.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	soleBackend(ctx, t, d)
	// rowsRead is how many rows and index entries of any table the backend has read so far.
	rowsRead := func() int64 {
		t.Helper()
		if _, err := d.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := d.GetContext(ctx, &n, `SELECT
			(SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables) +
			(SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes)`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	repo := db.NewRepo(d, nil)
	const limit = 100
	f := db.PollFilter{AppID: "app-2", Limit: limit}
	seen := map[string]int{}
	var worst int64
	var lastTx string
	var lastSeq int64
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("the pages do not end")
		}
		before := rowsRead()
		evs, err := repo.PollEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, rowsRead()-before)
		for _, e := range evs {
			seen[e.ID]++
			if e.TxID == lastTx && e.Seq <= lastSeq {
				t.Fatalf("%s (seq %d) listed after seq %d", e.ID, e.Seq, lastSeq)
			}
			lastTx, lastSeq = e.TxID, e.Seq
		}
		if len(evs) < limit {
			break
		}
		f.AfterTxID, f.AfterSeq = lastTx, lastSeq
	}
	t.Logf("a page of %d read at most %d rows and index entries", limit, worst)
	if worst > 6*limit {
		t.Errorf("a page of %d events read %d rows and index entries: it reads the caller's history", limit, worst)
	}
	if len(seen) != 3050 {
		t.Errorf("the pages listed %d events, want 3050", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
}
