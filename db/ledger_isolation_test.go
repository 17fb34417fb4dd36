package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/internal/testenv"
)

// A ledger row PostgreSQL refuses (a NUL or invalid UTF-8 in text, \u0000 in jsonb: what the sender
// cleans, injected here below it) fails neither its own call's other rows nor the calls that share
// its group-committed statement: every outcome is recorded, the bad rows without the receiver's
// answer, and the caller is told which.
func TestRecordAttemptsIsolatesRefusedRows(t *testing.T) {
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
	const calls, perCall = 20, 8
	var ds []db.Delivery
	for i := range calls * perCall {
		ev := fmt.Sprintf("app-1/e%03d", i)
		if _, _, err := repo.InsertEvent(ctx, db.Event{ID: ev, AppID: "app-1", Type: "t", Payload: types.JSONText(`{}`), WorkflowID: "wf/" + ev}); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, db.Delivery{ID: "dlv-" + ev, EventID: ev, AppID: "app-1", URL: "http://x/", WorkflowID: "d/" + ev})
	}
	if _, err := repo.EnsureDeliveries(ctx, ds, nil, ""); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*db.Attempt){
		ds[3].ID:  func(a *db.Attempt) { a.ResponseBody = "ok\x00done" },
		ds[4].ID:  func(a *db.Attempt) { a.ResponseBody = "caf\xe9" },
		ds[50].ID: func(a *db.Attempt) { a.Error = "HTTP 200: \xff\xfe" },
		ds[99].ID: func(a *db.Attempt) {
			a.ResponseHeaders = types.NullJSONText{JSONText: types.JSONText(`{"X":"a\u0000b"}`), Valid: true}
		},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	stripped := map[string]bool{}
	start := make(chan struct{})
	for c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rows []db.Attempt
			for _, d := range ds[c*perCall : (c+1)*perCall] {
				a := db.Attempt{DeliveryID: d.ID, Attempt: 1, RequestHeaders: types.JSONText(`{"webhook-id":"x"}`),
					ResponseStatus: sql.NullInt32{Int32: 200, Valid: true}, ResponseBody: "fine", StartedAt: time.Now(), Succeeded: true,
					ResponseHeaders: types.NullJSONText{JSONText: types.JSONText(`{"Content-Type":"text/plain"}`), Valid: true}}
				if f := bad[d.ID]; f != nil {
					f(&a)
				}
				rows = append(rows, a)
			}
			<-start
			st, err := repo.RecordAttempts(ctx, rows, "")
			if err != nil {
				t.Errorf("call %d: %v", c, err)
			}
			mu.Lock()
			for _, s := range st {
				stripped[s.DeliveryID] = true
			}
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	for id := range bad {
		if !stripped[id] {
			t.Errorf("%s not reported as stripped", id)
		}
	}
	if len(stripped) != len(bad) {
		t.Errorf("%d rows reported stripped, want %d: %v", len(stripped), len(bad), stripped)
	}
	var rows []struct {
		ID     string         `db:"delivery_id"`
		State  string         `db:"state"`
		Body   string         `db:"response_body"`
		Error  string         `db:"error"`
		Status string         `db:"status"`
		Hdrs   sql.NullString `db:"response_headers"`
	}
	if err := tdb.DB.SelectContext(ctx, &rows, `SELECT a.delivery_id, a.state, a.response_body, a.error, d.status,
			a.response_headers::text AS response_headers
		FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != calls*perCall {
		t.Fatalf("%d ledger rows, want %d", len(rows), calls*perCall)
	}
	for _, r := range rows {
		if r.State != "completed" || r.Status != "succeeded" {
			t.Errorf("%s: attempt %s, delivery %s", r.ID, r.State, r.Status)
		}
		switch {
		case bad[r.ID] != nil:
			if !strings.HasPrefix(r.Body, "[response not stored: the database refused it (") || r.Hdrs.Valid {
				t.Errorf("%s: refused row stored as %q, headers %v", r.ID, r.Body, r.Hdrs)
			}
		case r.Body != "fine" || !r.Hdrs.Valid:
			t.Errorf("%s: batch-mate stored as %q, headers %v", r.ID, r.Body, r.Hdrs)
		}
	}
	var errText string
	if err := tdb.DB.GetContext(ctx, &errText, `SELECT error FROM delivery_attempts WHERE delivery_id = $1`, ds[50].ID); err != nil || errText != "HTTP 200: \uFFFD" {
		t.Errorf("cleaned error text %q, %v", errText, err)
	}
}
