package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

const deliveryColumns = `id, event_id, subscription_id, app_id, url, replay, status, attempts, last_status,
	last_error, workflow_id, notified_at, created_at, updated_at, finished_at`

// EnsureDeliveries creates the deliveries that do not exist yet and returns all of them, new and old,
// so that a retried fan-out picks up where the crashed one stopped.
func (r *Repo) EnsureDeliveries(ctx context.Context, ds []Delivery) ([]Delivery, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	n := len(ds)
	ids, evs, apps, urls, wfs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	subs, replays := make([]sql.NullString, n), make([]int64, n)
	for i, d := range ds {
		ids[i], evs[i], apps[i], urls[i], wfs[i] = d.ID, d.EventID, d.AppID, d.URL, d.WorkflowID
		subs[i], replays[i] = d.SubscriptionID, int64(d.Replay)
	}
	// One round trip: insert what is missing and read back what was there. Ids derive from
	// (event, target, replay), so the rows a crashed fan-out wrote carry the same ids. The outer
	// SELECT sees the table as it was before the INSERT, hence the UNION.
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `
		WITH ins AS (
			INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, replay, workflow_id)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[])
			ON CONFLICT DO NOTHING
			RETURNING `+deliveryColumns+`
		)
		SELECT `+deliveryColumns+` FROM ins
		UNION ALL
		SELECT `+deliveryColumns+` FROM deliveries WHERE id = ANY($1)
		ORDER BY id`,
		pq.StringArray(ids), pq.StringArray(evs), pq.GenericArray{A: subs}, pq.StringArray(apps), pq.StringArray(urls),
		pq.Int64Array(replays), pq.StringArray(wfs))
	if err != nil {
		return nil, fmt.Errorf("ensure deliveries: %w", err)
	}
	return out, nil
}

// GetDelivery loads a delivery; appID "" skips the ownership check (workers).
func (r *Repo) GetDelivery(ctx context.Context, appID, id string) (Delivery, error) {
	var d Delivery
	err := r.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = $1 AND ($2 = '' OR app_id = $2)`, id, appID)
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %s: %w", id, notFound(err))
	}
	return d, nil
}

// EventDeliveries lists an event's deliveries, replays included.
func (r *Repo) EventDeliveries(ctx context.Context, eventID string) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `SELECT `+deliveryColumns+` FROM deliveries WHERE event_id = $1 ORDER BY created_at, id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", eventID, err)
	}
	return out, nil
}

// Attempts lists a delivery's ledger rows in order.
func (r *Repo) Attempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	var out []Attempt
	err := r.db.SelectContext(ctx, &out, `SELECT delivery_id, attempt, request_headers, response_status, response_headers,
		response_body, error, duration_ms, started_at FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
	}
	return out, nil
}

// LastAttempt returns the highest attempt number recorded for a delivery (0 if none).
func (r *Repo) LastAttempt(ctx context.Context, deliveryID string) (int, error) {
	var n int
	err := r.db.GetContext(ctx, &n, `SELECT coalesce(max(attempt), 0) FROM delivery_attempts WHERE delivery_id = $1`, deliveryID)
	if err != nil {
		return 0, fmt.Errorf("last attempt of %s: %w", deliveryID, err)
	}
	return n, nil
}

// RecordAttempts writes ledger rows and folds them into their deliveries (attempt count, last
// status and error, success) in one statement. A row that exists already (the activity ran again
// after a crash) changes nothing, which is what keeps the ledger exactly-once.
//
// dispatchedEvent, when not empty, is also marked dispatched by the same statement (FanOut's last
// write), so a fan-out costs one commit for its ledger.
func (r *Repo) RecordAttempts(ctx context.Context, rows []Attempt, dispatchedEvent string) error {
	if len(rows) == 0 {
		if dispatchedEvent != "" {
			return r.MarkDispatched(ctx, dispatchedEvent)
		}
		return nil
	}
	n := len(rows)
	ids, headers, bodies, errs, started := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	attempts, durations := make([]int64, n), make([]int64, n)
	statuses, respHeaders := make([]sql.NullInt32, n), make([]sql.NullString, n)
	succeeded := make([]bool, n)
	for i, a := range rows {
		ids[i], attempts[i], durations[i], succeeded[i] = a.DeliveryID, int64(a.Attempt), a.DurationMS, a.Succeeded
		headers[i], bodies[i], errs[i] = string(a.RequestHeaders), a.ResponseBody, a.Error
		started[i] = a.StartedAt.UTC().Format(time.RFC3339Nano)
		statuses[i] = a.ResponseStatus
		respHeaders[i] = sql.NullString{String: string(a.ResponseHeaders.JSONText), Valid: a.ResponseHeaders.Valid}
	}
	_, err := r.db.ExecContext(ctx, `
		WITH v AS (
			SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::bigint[],
				$9::text[], $10::bool[])
			AS v(delivery_id, attempt, request_headers, response_status, response_headers, response_body, error, duration_ms,
				started_at, succeeded)
		), ins AS (
			INSERT INTO delivery_attempts (delivery_id, attempt, request_headers, response_status, response_headers,
				response_body, error, duration_ms, started_at)
			SELECT delivery_id, attempt, request_headers::jsonb, response_status, response_headers::jsonb, response_body,
				error, duration_ms, started_at::timestamptz FROM v
			ON CONFLICT (delivery_id, attempt) DO NOTHING
			RETURNING delivery_id, attempt
		), disp AS (
			UPDATE events SET dispatched_at = now() WHERE $11 <> '' AND id = $11 AND dispatched_at IS NULL
		), upd AS (
			UPDATE deliveries d SET attempts = greatest(d.attempts, v.attempt), last_status = v.response_status,
				last_error = v.error, updated_at = now(),
				status = CASE WHEN d.status = 'pending' AND v.succeeded THEN 'succeeded' ELSE d.status END,
				finished_at = CASE WHEN d.status = 'pending' AND v.succeeded THEN now() ELSE d.finished_at END
			FROM v JOIN ins USING (delivery_id, attempt)
			WHERE d.id = v.delivery_id
			RETURNING d.subscription_id, v.succeeded
		)
		UPDATE subscriptions s SET consecutive_failures = 0
		FROM upd WHERE upd.succeeded AND s.id = upd.subscription_id AND s.consecutive_failures > 0`,
		pq.StringArray(ids), pq.Int64Array(attempts), pq.StringArray(headers), pq.GenericArray{A: statuses},
		pq.GenericArray{A: respHeaders}, pq.StringArray(bodies), pq.StringArray(errs), pq.Int64Array(durations),
		pq.StringArray(started), pq.BoolArray(succeeded), dispatchedEvent)
	if err != nil {
		return fmt.Errorf("record %d attempts: %w", n, err)
	}
	return nil
}

// FinishResult tells the workflow what finishing a delivery set off.
type FinishResult struct {
	// Disabled is true when this failure disabled the subscription (its streak reached the limit).
	Disabled bool
}

// FinishDelivery closes a pending delivery as failed or cancelled. A failure counts towards the
// subscription's streak; at disableAfter in a row (0 = never) the subscription is disabled.
// disableNow disables it whatever the streak (410 Gone).
func (r *Repo) FinishDelivery(ctx context.Context, id, status, reason string, disableAfter int, disableNow bool) (FinishResult, error) {
	var res FinishResult
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		var sub sql.NullString
		err := tx.GetContext(ctx, &sub, `UPDATE deliveries SET status = $2, last_error = CASE WHEN $3 = '' THEN last_error ELSE $3 END,
			updated_at = now(), finished_at = now() WHERE id = $1 AND status = 'pending' RETURNING subscription_id`, id, status, reason)
		if err == sql.ErrNoRows {
			return nil // already finished: the activity ran twice
		}
		if err != nil || status != StatusFailed || !sub.Valid {
			return err
		}
		var failures int
		var active bool
		if err := tx.QueryRowxContext(ctx, `UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1
			WHERE id = $1 RETURNING consecutive_failures, active`, sub.String).Scan(&failures, &active); err != nil {
			if err == sql.ErrNoRows {
				return nil
			}
			return err
		}
		if !active || !(disableNow || (disableAfter > 0 && failures >= disableAfter)) {
			return nil
		}
		why := fmt.Sprintf("disabled after %d failed deliveries in a row", failures)
		if disableNow {
			why = "disabled: the receiver answered 410 Gone"
		}
		_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET active = false, disabled_reason = $2, updated_at = now() WHERE id = $1`, sub.String, why)
		res.Disabled = err == nil
		return err
	})
	if err != nil {
		return FinishResult{}, fmt.Errorf("finish delivery %s: %w", id, err)
	}
	return res, nil
}

// MarkNotified records that the failure e-mail went out; false means it had gone out already.
func (r *Repo) MarkNotified(ctx context.Context, id string) (bool, error) {
	res, err := r.db.ExecContext(ctx, `UPDATE deliveries SET notified_at = now() WHERE id = $1 AND notified_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("mark %s notified: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (r *Repo) inTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := r.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CreateReplay adds a new attempt series for a finished delivery: a delivery row with the next
// replay number for the same event and target.
func (r *Repo) CreateReplay(ctx context.Context, of Delivery, id func(replay int) (deliveryID, workflowID string)) (Delivery, error) {
	var next int
	err := r.db.GetContext(ctx, &next, `SELECT coalesce(max(replay), 0) + 1 FROM deliveries
		WHERE event_id = $1 AND coalesce(subscription_id, url) = coalesce($2, $3)`, of.EventID, of.SubscriptionID, of.URL)
	if err != nil {
		return Delivery{}, fmt.Errorf("replay %s: %w", of.ID, err)
	}
	did, wid := id(next)
	var d Delivery
	err = r.db.GetContext(ctx, &d, `INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, replay, workflow_id)
		VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING `+deliveryColumns, did, of.EventID, of.SubscriptionID, of.AppID, of.URL, next, wid)
	if isUniqueViolation(err) {
		return Delivery{}, fmt.Errorf("replay %s: another replay is being created: %w", of.ID, ErrConflict)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("replay %s: %w", of.ID, err)
	}
	return d, nil
}

// DeliveryFilter narrows a delivery listing.
type DeliveryFilter struct {
	AppID          string
	Status         string
	SubscriptionID string
	Since          time.Time
	AfterCreated   time.Time
	AfterID        string
	Limit          int
}

// ListDeliveries lists an app's deliveries, oldest first, for finding failures to replay.
func (r *Repo) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE app_id = $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR subscription_id = $3)
		  AND created_at >= $4 AND (created_at, id) > ($5, $6)
		ORDER BY created_at, id LIMIT $7`, f.AppID, f.Status, f.SubscriptionID, f.Since, f.AfterCreated, f.AfterID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}
