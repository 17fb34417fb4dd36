package db_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/internal/testenv"
)

// hotTables are the tables that grow with traffic.
var hotTables = []string{"events", "deliveries", "delivery_attempts", "subscriptions"}

// The hot queries (delivery listing, polling, target lookup, ledger reads, retention) use indexes:
// with 100k rows in each table, running them through the repository adds no sequential scan on
// any table that grows with traffic. The plans are logged (go test -v) for the record.
func TestHotQueriesUseIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	tdb, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("HOOKD_KEEP_TEST_DB") != "" { // to EXPLAIN by hand
		t.Logf("database %s kept", tdb.Name)
	} else {
		t.Cleanup(func() { tdb.Drop(ctx) })
	}
	d := tdb.DB
	// 1,000 apps (a tenth of them publish); 1,000 registered events; 100k subscriptions, events,
	// deliveries and attempts. An app's deliveries are 0.1 % of the table: at 1 % of a table this
	// narrow, a parallel scan costs about the same as the index, and the plan flips with the
	// sample ANALYZE happens to draw.
	for _, q := range []string{
		`INSERT INTO apps (id, name, secret) SELECT 'app-' || i, 'app ' || i, 'plain' FROM generate_series(0, 999) i`,
		`INSERT INTO registered_events (app_id, topic, name, event_type)
			SELECT 'app-' || (i % 100), 'participant', 'ev-' || i, 'type-' || (i % 10) FROM generate_series(0, 999) i`,
		`INSERT INTO subscriptions (id, app_id, publisher_app_id, registered_event_id, url, secret, event_types)
			SELECT 'sub-' || lpad(i::text, 6, '0'), 'app-' || (i % 100), 'app-' || ((i / 7) % 100),
				CASE WHEN i % 2 = 0 THEN 1 + (i % 1000) END, 'https://example.com/' || i, 'plain', ARRAY['type-' || (i % 10)]
			FROM generate_series(0, 99999) i`,
		`INSERT INTO events (id, client_id, app_id, topic, type, payload, workflow_id, received_at, dispatched_at)
			SELECT 'app-' || (i % 100) || '/e' || i, 'e' || i, 'app-' || (i % 100), 'participant', 'type-' || (i % 10), '{}',
				'event/' || i, now() - (i || ' seconds')::interval, now()
			FROM generate_series(0, 99999) i`,
		`INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, status, created_at)
			SELECT 'dlv-' || i, 'app-' || (i % 100) || '/e' || i, 'sub-' || lpad(i::text, 6, '0'), 'app-' || ((i * 7) % 1000),
				'https://example.com/' || i, (ARRAY['succeeded','failed','pending','succeeded'])[1 + i % 4],
				now() - (i || ' seconds')::interval
			FROM generate_series(0, 99999) i`,
		`INSERT INTO delivery_attempts (delivery_id, attempt, started_at, state)
			SELECT 'dlv-' || i, 1, now(), 'completed' FROM generate_series(0, 99999) i`,
		`VACUUM ANALYZE`, // what autovacuum does to a table of this size
	} {
		if _, err := d.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	soleBackend(ctx, t, d)
	repo := db.NewRepo(d, nil)
	seqScans := func() map[string]int64 {
		t.Helper()
		if _, err := d.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `SELECT 1`); err != nil { // the flush happens at the end of a transaction
			t.Fatal(err)
		}
		var rows []struct {
			Name string `db:"relname"`
			Seq  int64  `db:"seq_scan"`
		}
		if err := d.SelectContext(ctx, &rows, `SELECT relname, seq_scan FROM pg_stat_user_tables`); err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, r := range rows {
			out[r.Name] = r.Seq
		}
		return out
	}
	queries := []struct {
		name string
		run  func() error
	}{
		{"list deliveries", func() error {
			_, err := repo.ListDeliveries(ctx, db.DeliveryFilter{AppID: "app-7", Limit: 51})
			return err
		}},
		{"list failed deliveries of a subscription", func() error {
			_, err := repo.ListDeliveries(ctx, db.DeliveryFilter{AppID: "app-7", Status: delivery.StatusFailed, SubscriptionID: "sub-000001", Limit: 51})
			return err
		}},
		{"poll events", func() error {
			_, err := repo.PollEvents(ctx, db.PollFilter{AppID: "app-7", Limit: 100})
			return err
		}},
		{"targets of an event", func() error {
			_, err := repo.Targets(ctx, "app-7", "participant", "type-3", "", 500)
			return err
		}},
		{"event deliveries", func() error {
			_, err := repo.EventDeliveryPage(ctx, "app-7/e7", db.TargetCursor{}, 51)
			return err
		}},
		{"ledger", func() error {
			_, err := repo.Attempts(ctx, "dlv-7")
			return err
		}},
		{"retention", func() error {
			_, err := repo.DeleteExpired(ctx, time.Now().Add(-time.Hour), 500)
			return err
		}},
	}
	for _, q := range queries {
		before := seqScans()
		if err := q.run(); err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		after := seqScans()
		var scanned []string
		for _, table := range hotTables {
			if after[table] > before[table] {
				scanned = append(scanned, table)
			}
		}
		if len(scanned) > 0 {
			t.Errorf("%s: sequential scan of %s", q.name, strings.Join(scanned, ", "))
		}
	}
}
