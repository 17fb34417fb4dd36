package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/internal/testenv"
)

// The portal's queries (its message log with and without filters, a narrowed session's log, the
// endpoints' health, the session lookup of every portal request, the audit log) use indexes:
// with 100k rows in the tables that grow with traffic, none of them scans one sequentially.
func TestPortalQueriesUseIndexes(t *testing.T) {
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
		`INSERT INTO apps (id, name, secret) SELECT 'app-' || i, 'app ' || i, 'plain' FROM generate_series(0, 999) i`,
		`INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, event_types)
			SELECT 'sub-' || lpad(i::text, 6, '0'), 'app-' || (i % 1000), 'app-' || (i % 1000), 'https://example.com/' || i, 'plain',
				ARRAY['type-' || (i % 10)]
			FROM generate_series(0, 99999) i`,
		`INSERT INTO events (id, client_id, app_id, topic, type, payload, workflow_id, received_at, dispatched_at)
			SELECT 'app-' || (i % 100) || '/e' || i, 'e' || i, 'app-' || (i % 100), 'participant', 'type-' || (i % 10), '{}',
				'event/' || i, now() - (i || ' seconds')::interval, now()
			FROM generate_series(0, 99999) i`,
		`INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, status, created_at)
			SELECT 'dlv-' || i, 'app-' || (i % 100) || '/e' || i, 'sub-' || lpad(((i * 7) % 100000)::text, 6, '0'), 'app-' || ((i * 7) % 1000),
				'https://example.com/' || i, (ARRAY['succeeded','failed','pending','succeeded'])[1 + i % 4],
				now() - (i || ' seconds')::interval
			FROM generate_series(0, 99999) i`,
		`INSERT INTO delivery_attempts (delivery_id, attempt, started_at, state, response_status, duration_ms)
			SELECT 'dlv-' || i, 1, now() - (i || ' seconds')::interval, 'completed', 200 + (i % 2) * 300, i % 500 FROM generate_series(0, 99999) i`,
		`INSERT INTO portal_sessions (id, app_id, cookie_hash, token_expires_at, lifetime_s, expires_at, created_by)
			SELECT 'ps-' || i, 'app-' || (i % 1000), sha256(('c' || i)::bytea), now(), 3600, now() + interval '1 hour', 'app'
			FROM generate_series(0, 99999) i`,
		`INSERT INTO portal_audit (app_id, session_id, action) SELECT 'app-' || (i % 1000), 'ps-' || i, 'endpoint.update'
			FROM generate_series(0, 99999) i`,
		`VACUUM ANALYZE`,
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
		if _, err := d.ExecContext(ctx, `SELECT 1`); err != nil {
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
	tables := []string{"events", "deliveries", "delivery_attempts", "subscriptions", "portal_sessions", "portal_audit"}
	queries := []struct {
		name string
		run  func() error
	}{
		{"message log", func() error {
			_, err := repo.DeliveryLog(ctx, db.LogFilter{AppID: "app-7", Limit: 51})
			return err
		}},
		{"message log of failures in a day", func() error {
			_, err := repo.DeliveryLog(ctx, db.LogFilter{AppID: "app-7", Status: delivery.StatusFailed, Since: time.Now().Add(-24 * time.Hour), Limit: 51})
			return err
		}},
		{"a narrowed session's message log", func() error {
			_, err := repo.DeliveryLog(ctx, db.LogFilter{AppID: "app-7", SubscriptionIDs: []string{"sub-000049"}, Limit: 51})
			return err
		}},
		{"endpoints' health", func() error {
			_, err := repo.SubscriptionsHealth(ctx, "app-7", []string{"sub-000049", "sub-000007", "sub-001007"}, time.Now().Add(-24*time.Hour))
			return err
		}},
		{"session of a cookie", func() error {
			_, _, err := repo.PortalSessionByCookie(ctx, []byte("not a hash of any cookie"))
			if err != nil && !strings.Contains(err.Error(), "not found") {
				return err
			}
			return nil
		}},
		{"audit log", func() error {
			_, err := repo.PortalAuditLog(ctx, "app-7", 0, 51)
			return err
		}},
		{"sessions of an app", func() error {
			_, err := repo.PortalSessions(ctx, "app-7", time.Time{}, "", 51)
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
		for _, table := range tables {
			if after[table] > before[table] {
				scanned = append(scanned, table)
			}
		}
		if len(scanned) > 0 {
			t.Errorf("%s: sequential scan of %s", q.name, strings.Join(scanned, ", "))
		}
	}
}
