package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

const subscriptionColumns = `id, app_id, publisher_app_id, registered_event_id, url, secret, previous_secret,
	previous_secret_until, callback_key, event_types, filter_logic, contact_email, active, disabled_reason,
	consecutive_failures, retry_initial_ms, retry_backoff, retry_max_interval_ms, retry_max_attempts,
	retry_max_duration_ms, timeout_ms, rate_limit, max_in_flight, paused_until, pause_ms, created_at, updated_at, deleted_at,
	filter_error, filter_error_at`

// CreateSubscription stores a subscription.
func (r *Repo) CreateSubscription(ctx context.Context, s Subscription) (Subscription, error) {
	s, err := r.sealSubscription(s)
	if err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", err)
	}
	var got Subscription
	err = r.db.GetContext(ctx, &got, `INSERT INTO subscriptions (id, app_id, publisher_app_id, registered_event_id,
		url, secret, callback_key, event_types, filter_logic, contact_email, retry_initial_ms, retry_backoff,
		retry_max_interval_ms, retry_max_attempts, retry_max_duration_ms, timeout_ms, rate_limit, max_in_flight)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) RETURNING `+subscriptionColumns,
		s.ID, s.AppID, s.PublisherAppID, s.RegisteredEventID, s.URL, s.Secret, s.CallbackKey, s.EventTypes,
		s.FilterLogic, s.ContactEmail, s.InitialIntervalMS, s.BackoffCoefficient, s.MaxIntervalMS, s.MaxAttempts,
		s.MaxDurationMS, s.TimeoutMS, s.RateLimit, s.MaxInFlight)
	if err == nil {
		err = r.openSubscriptions(&got)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", err)
	}
	return got, nil
}

// GetSubscription loads a subscription within scope.
func (r *Repo) GetSubscription(ctx context.Context, scope Scope, id string) (Subscription, error) {
	var s Subscription
	// Owners no longer see a deleted subscription; the system still does, to stop its pending retries.
	err := r.db.GetContext(ctx, &s, `SELECT `+subscriptionColumns+` FROM subscriptions
		WHERE id = $1 AND ($2 OR (app_id = $3 AND deleted_at IS NULL))`, id, scope.any, scope.app)
	if err == nil {
		err = r.openSubscriptions(&s)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription %s: %w", id, notFound(err))
	}
	return s, nil
}

// ListSubscriptions returns an app's subscriptions in creation order, after the one with id after.
func (r *Repo) ListSubscriptions(ctx context.Context, appID, after string, limit int) ([]Subscription, error) {
	var out []Subscription
	err := r.db.SelectContext(ctx, &out, `SELECT `+subscriptionColumns+` FROM subscriptions
		WHERE app_id = $1 AND deleted_at IS NULL
		  AND ($2 = '' OR (created_at, id) > (SELECT created_at, id FROM subscriptions WHERE id = $2))
		ORDER BY created_at, id LIMIT $3`, appID, after, limit)
	for i := 0; err == nil && i < len(out); i++ {
		err = r.openSubscriptions(&out[i])
	}
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return out, nil
}

// SetSubscriptionActive enables or disables a subscription, saying why when disabling. changed
// reports whether it was in the other state before.
func (r *Repo) SetSubscriptionActive(ctx context.Context, scope Scope, id string, active bool, reason string) (s Subscription, changed bool, err error) {
	var row struct {
		Subscription
		WasActive bool `db:"was_active"`
	}
	err = r.db.GetContext(ctx, &row, `UPDATE subscriptions s SET active = $3, disabled_reason = $4,
		consecutive_failures = CASE WHEN $3 THEN 0 ELSE s.consecutive_failures END, updated_at = now()
		FROM (SELECT id AS old_id, active AS was_active FROM subscriptions WHERE id = $1 FOR UPDATE) o
		WHERE s.id = o.old_id AND ($5 OR s.app_id = $2) AND s.deleted_at IS NULL
		  AND NOT ($3 AND EXISTS (SELECT 1 FROM registered_events e
			WHERE e.id = s.registered_event_id AND e.deleted_at IS NOT NULL))
		RETURNING `+prefixed("s", subscriptionColumns)+`, o.was_active`, id, scope.app, active, reason, scope.any)
	if errors.Is(err, sql.ErrNoRows) && active {
		// Not there, or refused: say which.
		var removed bool
		if err := r.db.GetContext(ctx, &removed, `SELECT EXISTS (SELECT 1 FROM subscriptions s
			JOIN registered_events e ON e.id = s.registered_event_id
			WHERE s.id = $1 AND ($3 OR s.app_id = $2) AND s.deleted_at IS NULL AND e.deleted_at IS NOT NULL)`,
			id, scope.app, scope.any); err == nil && removed {
			return Subscription{}, false, fmt.Errorf("enable subscription %s: %w", id, ErrEventRemoved)
		}
	}
	s = row.Subscription
	if err == nil {
		err = r.openSubscriptions(&s)
	}
	if err != nil {
		return Subscription{}, false, fmt.Errorf("set subscription %s active=%v: %w", id, active, notFound(err))
	}
	return s, row.WasActive != active, nil
}

// Target is a subscription that may receive an event, with the registered event's filter if any.
type Target struct {
	Subscription
	EventFilter []byte `db:"event_filter"`
	EventName   string `db:"event_name"`
	GetAPIPath  string `db:"get_api_path"`
}

// Targets lists, in id order and at most limit at a time, the active subscriptions after the one
// with id after that could receive an event of eventType on topic from publisher appID: the
// publisher's own subscriptions for that type, and other apps' subscriptions to the publisher's
// registered events of that type. Filters are evaluated by the caller. Concurrent calls share a
// statement (see batcher).
func (r *Repo) Targets(ctx context.Context, appID, topic, eventType, after string, limit int) ([]Target, error) {
	out, err := r.targetReads.do(ctx, targetQuery{app: appID, topic: topic, eventType: eventType, after: after, limit: limit})
	if err != nil {
		return nil, fmt.Errorf("targets for %s/%s after %q: %w", topic, eventType, after, err)
	}
	return out, nil
}

type targetQuery struct {
	app, topic, eventType, after string
	limit                        int
}

// targetsSQL is the statement of targets, assembled once rather than on every fan-out page.
var targetsSQL = `
		SELECT q.i - 1 AS query, t.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
			WITH ORDINALITY AS q(app, topic, type, after, lim, i)
		CROSS JOIN LATERAL (
			SELECT * FROM (
				(SELECT ` + prefixed("s", subscriptionColumns) + `, NULL::jsonb AS event_filter, '' AS event_name, '' AS get_api_path
				FROM subscriptions s
				WHERE s.publisher_app_id = q.app AND s.registered_event_id IS NULL AND s.active AND s.id > q.after
				  AND (q.type = ANY(s.event_types) OR '*' = ANY(s.event_types))
				ORDER BY s.id LIMIT q.lim)
				UNION ALL
				(SELECT ` + prefixed("s", subscriptionColumns) + `, e.filter_logic, e.name, e.get_api_path
				FROM subscriptions s JOIN registered_events e ON e.id = s.registered_event_id
				WHERE e.app_id = q.app AND e.event_type = q.type AND (q.topic = '' OR e.topic = q.topic) AND s.active
				  AND e.deleted_at IS NULL AND s.id > q.after
				ORDER BY s.id LIMIT q.lim)
			) u ORDER BY id LIMIT q.lim
		) t
		ORDER BY q.i, t.id`

// targets answers a batch of Targets calls in one statement, each call's page read by its own
// index-driven subquery.
func (r *Repo) targets(ctx context.Context, qs []targetQuery) ([][]Target, error) {
	n := len(qs)
	apps, topics, types, afters, limits := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, q := range qs {
		apps[i], topics[i], types[i], afters[i], limits[i] = q.app, q.topic, q.eventType, q.after, int64(q.limit)
	}
	var rows []struct {
		Query int `db:"query"`
		Target
	}
	// Not prepared: a generic plan walks every subscription after the cursor for the registered
	// events' branch (1x50000 fell from 1,675 to 647 deliveries/s); a custom plan starts from the
	// publisher's registered events.
	err := r.db.SelectContext(ctx, &rows, targetsSQL, pq.StringArray(apps), pq.StringArray(topics), pq.StringArray(types), pq.StringArray(afters), pq.Int64Array(limits))
	if err != nil {
		return nil, fmt.Errorf("targets of %d events: %w", n, err)
	}
	// Each page gets its rows in one allocation: a Target is large, and growing the slices by
	// appending copied each one several times.
	counts := make([]int, n)
	for _, row := range rows {
		counts[row.Query]++
	}
	out := make([][]Target, n)
	for i, c := range counts {
		out[i] = make([]Target, 0, c)
	}
	for i := range rows {
		row := &rows[i]
		if err := r.openSubscriptions(&row.Target.Subscription); err != nil {
			return nil, err
		}
		out[row.Query] = append(out[row.Query], row.Target)
	}
	return out, nil
}

// RotateSecret makes secret the signing secret and keeps the old one valid until graceUntil, so
// receivers can switch over without dropping callbacks.
func (r *Repo) RotateSecret(ctx context.Context, appID, id, secret string, graceUntil time.Time) (Subscription, error) {
	var s Subscription
	// The old secret is opened and sealed again for its new column rather than copied in SQL: a
	// sealed value is bound to its column and would not open as previous_secret.
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		var stored string
		if err := tx.GetContext(ctx, &stored, `SELECT secret FROM subscriptions
			WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL FOR UPDATE`, id, appID); err != nil {
			return notFound(err)
		}
		old, err := r.open(colSubSecret, id, stored)
		if err != nil {
			return err
		}
		previous, err := r.seal(colSubPrevious, id, old)
		if err != nil {
			return err
		}
		next, err := r.seal(colSubSecret, id, secret)
		if err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &s, `UPDATE subscriptions SET previous_secret = $2, previous_secret_until = $4,
			secret = $3, updated_at = now() WHERE id = $1 RETURNING `+subscriptionColumns, id, previous, next, graceUntil); err != nil {
			return err
		}
		return r.openSubscriptions(&s)
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("rotate secret of %s: %w", id, notFound(err))
	}
	return s, nil
}

// Secrets returns the secrets a subscription signs with now: the current one, and the previous one
// while its grace period lasts.
func (s Subscription) Secrets(now time.Time) []string {
	out := []string{s.Secret}
	if s.PreviousSecret.Valid && s.PreviousSecretUntil.Valid && now.Before(s.PreviousSecretUntil.Time) {
		out = append(out, s.PreviousSecret.String)
	}
	return out
}

// DeleteSubscription removes an app's subscription: it stops matching events and disappears for its
// owner, and the workflow ids of its pending deliveries are returned so they can be cancelled.
func (r *Repo) DeleteSubscription(ctx context.Context, appID, id string) (pendingWorkflows []string, err error) {
	err = r.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE subscriptions SET active = false, disabled_reason = 'deleted',
			deleted_at = now(), updated_at = now() WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL`, id, appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return tx.SelectContext(ctx, &pendingWorkflows, `SELECT workflow_id FROM deliveries
			WHERE subscription_id = $1 AND status = 'pending' AND workflow_id <> ''`, id)
	})
	if err != nil {
		return nil, fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return pendingWorkflows, nil
}

// UpdateSubscription writes the mutable settings of a subscription (URL, event types, filter,
// contact, callback key, retry policy, timeout) as given in s.
func (r *Repo) UpdateSubscription(ctx context.Context, s Subscription) (Subscription, error) {
	var got Subscription
	var err error
	if s.CallbackKey, err = r.sealNull(colSubCallbackKey, s.ID, s.CallbackKey); err != nil {
		return Subscription{}, fmt.Errorf("update subscription %s: %w", s.ID, err)
	}
	err = r.db.GetContext(ctx, &got, `UPDATE subscriptions SET url = $3, event_types = $4, filter_logic = $5,
		contact_email = $6, callback_key = $7, retry_initial_ms = $8, retry_backoff = $9, retry_max_interval_ms = $10,
		retry_max_attempts = $11, retry_max_duration_ms = $12, timeout_ms = $13, rate_limit = $14, max_in_flight = $15,
		updated_at = now(),
		-- A new filter has not failed yet.
		filter_error = CASE WHEN filter_logic IS DISTINCT FROM $5 THEN '' ELSE filter_error END,
		filter_error_at = CASE WHEN filter_logic IS DISTINCT FROM $5 THEN NULL ELSE filter_error_at END
		WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL RETURNING `+subscriptionColumns,
		s.ID, s.AppID, s.URL, s.EventTypes, s.FilterLogic, s.ContactEmail, s.CallbackKey, s.InitialIntervalMS,
		s.BackoffCoefficient, s.MaxIntervalMS, s.MaxAttempts, s.MaxDurationMS, s.TimeoutMS, s.RateLimit, s.MaxInFlight)
	if err == nil {
		err = r.openSubscriptions(&got)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("update subscription %s: %w", s.ID, notFound(err))
	}
	return got, nil
}

// MaxFilterErrorLen bounds the reason stored for a filter's run-time failure, in characters.
const MaxFilterErrorLen = 1000

// FilterErrorEvery is how often at most a subscription's filter failure is written.
const FilterErrorEvery = time.Minute

// FilterFailure is why a subscription's filter failed on an event.
type FilterFailure struct {
	SubscriptionID, Reason string
}

// RecordFilterErrors stores, in one statement, why the filters of some subscriptions failed,
// skipping those whose last failure was written less than FilterErrorEvery ago: a filter that
// fails on every event costs a write a minute, not one an event.
func (r *Repo) RecordFilterErrors(ctx context.Context, fs []FilterFailure) error {
	if len(fs) == 0 {
		return nil
	}
	ids, reasons := make([]string, len(fs)), make([]string, len(fs))
	for i, f := range fs {
		ids[i], reasons[i] = f.SubscriptionID, truncateRunes(strings.ReplaceAll(strings.ToValidUTF8(f.Reason, "\uFFFD"), "\x00", "\uFFFD"), MaxFilterErrorLen)
	}
	_, err := r.db.ExecContext(ctx, `UPDATE subscriptions s SET filter_error = u.reason, filter_error_at = now()
		FROM unnest($1::text[], $2::text[]) AS u(id, reason)
		WHERE s.id = u.id AND (s.filter_error_at IS NULL OR s.filter_error_at < now() - $3 * interval '1 millisecond')`,
		pq.StringArray(ids), pq.StringArray(reasons), FilterErrorEvery.Milliseconds())
	if err != nil {
		return fmt.Errorf("record filter errors of %d subscriptions: %w", len(fs), err)
	}
	return nil
}

// truncateRunes keeps at most n characters of s.
func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
