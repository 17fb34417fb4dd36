package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

const registeredColumns = `id, app_id, topic, name, description, event_type, filter_logic, type, get_api_path, schema, examples,
	deprecated, deprecation_note, created_at, updated_at`

// RegisterEvents stores all events or none; a name already registered for the app and topic is ErrConflict.
func (r *Repo) RegisterEvents(ctx context.Context, evs []RegisteredEvent) ([]RegisteredEvent, error) {
	tx, err := r.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("register events: %w", err)
	}
	defer tx.Rollback()
	out := make([]RegisteredEvent, 0, len(evs))
	for _, e := range evs {
		var got RegisteredEvent
		err := tx.GetContext(ctx, &got, `INSERT INTO registered_events
			(app_id, topic, name, description, event_type, filter_logic, type, get_api_path, schema, examples, deprecated, deprecation_note)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING `+registeredColumns,
			e.AppID, e.Topic, e.Name, e.Description, e.EventType, e.FilterLogic, e.Type, e.GetAPIPath, e.Schema, e.Examples,
			e.Deprecated, e.DeprecationNote)
		if isUniqueViolation(err) {
			return nil, fmt.Errorf("register event %q: %w", e.Name, ErrConflict)
		}
		if err != nil {
			return nil, fmt.Errorf("register event %q: %w", e.Name, err)
		}
		out = append(out, got)
	}
	if len(evs) > 0 {
		// A process may remember that this app's events had no schema.
		if err := notifySchemas(ctx, tx, evs[0].AppID); err != nil {
			return nil, fmt.Errorf("register events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("register events: %w", err)
	}
	return out, nil
}

// ListRegisteredEvents pages through an app's events on a topic by name.
func (r *Repo) ListRegisteredEvents(ctx context.Context, appID, topic, afterName string, afterID int64, limit int) ([]RegisteredEvent, error) {
	var out []RegisteredEvent
	err := r.db.SelectContext(ctx, &out, `SELECT `+registeredColumns+` FROM registered_events
		WHERE app_id = $1 AND ($2 = '' OR topic = $2) AND (name, id) > ($3, $4) AND deleted_at IS NULL
		ORDER BY name, id LIMIT $5`, appID, topic, afterName, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list registered events: %w", err)
	}
	return out, nil
}

// GetRegisteredEvent finds one event by publisher, topic and name.
func (r *Repo) GetRegisteredEvent(ctx context.Context, appID, topic, name string) (RegisteredEvent, error) {
	var e RegisteredEvent
	err := r.db.GetContext(ctx, &e, `SELECT `+registeredColumns+` FROM registered_events
		WHERE app_id = $1 AND topic = $2 AND name = $3 AND deleted_at IS NULL`, appID, topic, name)
	if err != nil {
		return RegisteredEvent{}, fmt.Errorf("get registered event %q: %w", name, notFound(err))
	}
	return e, nil
}

// UpdateRegisteredEvent replaces the mutable fields of an event; renaming onto a taken name is ErrConflict.
func (r *Repo) UpdateRegisteredEvent(ctx context.Context, oldName string, e RegisteredEvent) (RegisteredEvent, error) {
	var got RegisteredEvent
	// The update and its notification commit together: every API process drops the app's
	// compiled schemas (SchemasChannel) once the new ones can be read.
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &got, `UPDATE registered_events SET name=$4, description=$5, event_type=$6,
			filter_logic=$7, type=$8, get_api_path=$9, schema=$10, examples=$11, deprecated=$12, deprecation_note=$13,
			updated_at=now()
			WHERE app_id=$1 AND topic=$2 AND name=$3 AND deleted_at IS NULL RETURNING `+registeredColumns,
			e.AppID, e.Topic, oldName, e.Name, e.Description, e.EventType, e.FilterLogic, e.Type, e.GetAPIPath,
			e.Schema, e.Examples, e.Deprecated, e.DeprecationNote); err != nil {
			return err
		}
		return notifySchemas(ctx, tx, e.AppID)
	})
	if isUniqueViolation(err) {
		return RegisteredEvent{}, fmt.Errorf("update event %q: %w", oldName, ErrConflict)
	}
	if err != nil {
		return RegisteredEvent{}, fmt.Errorf("update event %q: %w", oldName, notFound(err))
	}
	return got, nil
}

// RemovedEvent is a registered event its publisher removed.
type RemovedEvent struct {
	ID   int64  `db:"id"`
	Name string `db:"name"`
}

// RemoveRegisteredEvents removes the named events of an app and disables every subscription to
// them with the reason. Nothing is deleted: the rows of the subscribers (subscriptions, deliveries,
// ledgers) are not the publisher's to destroy. It returns the events it removed.
func (r *Repo) RemoveRegisteredEvents(ctx context.Context, appID, topic string, names []string) ([]RemovedEvent, error) {
	var removed []RemovedEvent
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.SelectContext(ctx, &removed, `UPDATE registered_events SET deleted_at = now(), updated_at = now()
			WHERE app_id=$1 AND topic=$2 AND name = ANY($3) AND deleted_at IS NULL RETURNING id, name`,
			appID, topic, pq.StringArray(names)); err != nil {
			return err
		}
		ids := make(pq.Int64Array, len(removed))
		for i, e := range removed {
			ids[i] = e.ID
		}
		if err := notifySchemas(ctx, tx, appID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE subscriptions s SET active = false, updated_at = now(),
				disabled_reason = 'the publisher removed the event "' || e.name || '" (topic "' || e.topic || '")'
			FROM registered_events e
			WHERE e.id = s.registered_event_id AND e.id = ANY($1) AND s.deleted_at IS NULL`, ids)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("remove events: %w", err)
	}
	return removed, nil
}

// RemovedDelivery is a pending delivery, run by a workflow, to a subscription of a removed
// registered event, with the reason its subscription was disabled.
type RemovedDelivery struct {
	ID         string `db:"id"`
	WorkflowID string `db:"workflow_id"`
	Reason     string `db:"disabled_reason"`
}

// PendingDeliveriesOfRemoved pages (by id) through the pending deliveries, run by a workflow, to
// the subscriptions of a removed registered event.
func (r *Repo) PendingDeliveriesOfRemoved(ctx context.Context, registeredEventID int64, afterID string, limit int) ([]RemovedDelivery, error) {
	var out []RemovedDelivery
	err := r.db.SelectContext(ctx, &out, `SELECT d.id, d.workflow_id, s.disabled_reason FROM deliveries d
		JOIN subscriptions s ON s.id = d.subscription_id
		WHERE s.registered_event_id = $1 AND d.status = 'pending' AND d.workflow_id <> '' AND d.id > $2
		ORDER BY d.id LIMIT $3`, registeredEventID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries of removed event %d: %w", registeredEventID, err)
	}
	return out, nil
}

// RemovalNotice is a subscription whose contact has not yet been told that the event it
// subscribed to was removed.
type RemovalNotice struct {
	SubscriptionID string    `db:"id"`
	AppID          string    `db:"app_id"`
	URL            string    `db:"url"`
	Contact        string    `db:"contact"`
	Reason         string    `db:"disabled_reason"`
	UpdatedAt      time.Time `db:"updated_at"`
}

// RemovalNotices lists up to limit subscriptions of a removed registered event whose contact
// (the subscription's, else its app's) has not been told yet.
func (r *Repo) RemovalNotices(ctx context.Context, registeredEventID int64, limit int) ([]RemovalNotice, error) {
	var out []RemovalNotice
	err := r.db.SelectContext(ctx, &out, `SELECT s.id, s.app_id, s.url, s.disabled_reason, s.updated_at,
			coalesce(nullif(s.contact_email, ''), a.contact_email) AS contact
		FROM subscriptions s JOIN apps a ON a.id = s.app_id
		WHERE s.registered_event_id = $1 AND s.removal_notified_at IS NULL AND s.deleted_at IS NULL
		ORDER BY s.id LIMIT $2`, registeredEventID, limit)
	if err != nil {
		return nil, fmt.Errorf("removal notices of event %d: %w", registeredEventID, err)
	}
	return out, nil
}

// MarkRemovalNotified records that the contacts of these subscriptions were told.
func (r *Repo) MarkRemovalNotified(ctx context.Context, subscriptionIDs []string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE subscriptions SET removal_notified_at = now()
		WHERE id = ANY($1) AND removal_notified_at IS NULL`, pq.StringArray(subscriptionIDs))
	if err != nil {
		return fmt.Errorf("mark %d removal notices: %w", len(subscriptionIDs), err)
	}
	return nil
}

// UntoldRemovals lists registered events removed more than grace ago whose subscribers are not all
// told yet: the reconciler restarts their follow-up.
func (r *Repo) UntoldRemovals(ctx context.Context, grace time.Duration, limit int) ([]int64, error) {
	var out []int64
	err := r.db.SelectContext(ctx, &out, `SELECT e.id FROM registered_events e
		WHERE e.deleted_at < now() - make_interval(secs => $1) AND EXISTS (SELECT 1 FROM subscriptions s
			WHERE s.registered_event_id = e.id AND s.removal_notified_at IS NULL AND s.deleted_at IS NULL)
		ORDER BY e.id LIMIT $2`, grace.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("untold removals: %w", err)
	}
	return out, nil
}

// RegisteredEventByID loads an event by its internal id (workers rendering a payload).
func (r *Repo) RegisteredEventByID(ctx context.Context, id int64) (RegisteredEvent, error) {
	var e RegisteredEvent
	if err := r.db.GetContext(ctx, &e, `SELECT `+registeredColumns+` FROM registered_events WHERE id = $1`, id); err != nil {
		return RegisteredEvent{}, fmt.Errorf("registered event %d: %w", id, notFound(err))
	}
	return e, nil
}

// RegisteredEventsOf lists the registered events of several apps in one query, at most perApp each,
// grouped by app id.
func (r *Repo) RegisteredEventsOf(ctx context.Context, appIDs []string, perApp int) (map[string][]RegisteredEvent, error) {
	var rows []RegisteredEvent
	err := r.db.SelectContext(ctx, &rows, `SELECT `+registeredColumns+` FROM (
			SELECT *, row_number() OVER (PARTITION BY app_id ORDER BY name, id) AS n
			FROM registered_events WHERE app_id = ANY($1) AND deleted_at IS NULL
		) e WHERE n <= $2 ORDER BY app_id, name, id`, pq.StringArray(appIDs), perApp)
	if err != nil {
		return nil, fmt.Errorf("registered events of %d apps: %w", len(appIDs), err)
	}
	out := make(map[string][]RegisteredEvent, len(appIDs))
	for _, e := range rows {
		out[e.AppID] = append(out[e.AppID], e)
	}
	return out, nil
}
