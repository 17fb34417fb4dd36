package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// soleBackend leaves d one connection, so that this backend's statistics are the queries'
// statistics, and waits for the database's other backends to exit: they flush their statistics
// when they do, maybe in the middle of a measurement.
func soleBackend(ctx context.Context, t *testing.T, d *sqlx.DB) {
	t.Helper()
	d.SetMaxOpenConns(1)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var others int
		if err := d.GetContext(ctx, &others, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		if others == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d other backends still connected", others)
		}
	}
}
