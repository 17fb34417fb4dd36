package db

import (
	"context"
	"fmt"

	"github.com/lib/pq"
)

const registeredColumns = `id, app_id, topic, name, description, event_type, filter_logic, type, get_api_path, created_at, updated_at`

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
			(app_id, topic, name, description, event_type, filter_logic, type, get_api_path)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING `+registeredColumns,
			e.AppID, e.Topic, e.Name, e.Description, e.EventType, e.FilterLogic, e.Type, e.GetAPIPath)
		if isUniqueViolation(err) {
			return nil, fmt.Errorf("register event %q: %w", e.Name, ErrConflict)
		}
		if err != nil {
			return nil, fmt.Errorf("register event %q: %w", e.Name, err)
		}
		out = append(out, got)
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
		WHERE app_id = $1 AND ($2 = '' OR topic = $2) AND (name, id) > ($3, $4)
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
		WHERE app_id = $1 AND topic = $2 AND name = $3`, appID, topic, name)
	if err != nil {
		return RegisteredEvent{}, fmt.Errorf("get registered event %q: %w", name, notFound(err))
	}
	return e, nil
}

// UpdateRegisteredEvent replaces the mutable fields of an event; renaming onto a taken name is ErrConflict.
func (r *Repo) UpdateRegisteredEvent(ctx context.Context, oldName string, e RegisteredEvent) (RegisteredEvent, error) {
	var got RegisteredEvent
	err := r.db.GetContext(ctx, &got, `UPDATE registered_events SET name=$4, description=$5, event_type=$6,
		filter_logic=$7, type=$8, get_api_path=$9, updated_at=now()
		WHERE app_id=$1 AND topic=$2 AND name=$3 RETURNING `+registeredColumns,
		e.AppID, e.Topic, oldName, e.Name, e.Description, e.EventType, e.FilterLogic, e.Type, e.GetAPIPath)
	if isUniqueViolation(err) {
		return RegisteredEvent{}, fmt.Errorf("update event %q: %w", oldName, ErrConflict)
	}
	if err != nil {
		return RegisteredEvent{}, fmt.Errorf("update event %q: %w", oldName, notFound(err))
	}
	return got, nil
}

// DeleteRegisteredEvents deletes the named events and returns the names it deleted.
func (r *Repo) DeleteRegisteredEvents(ctx context.Context, appID, topic string, names []string) ([]string, error) {
	var deleted []string
	err := r.db.SelectContext(ctx, &deleted, `DELETE FROM registered_events
		WHERE app_id=$1 AND topic=$2 AND name = ANY($3) RETURNING name`, appID, topic, pq.StringArray(names))
	if err != nil {
		return nil, fmt.Errorf("delete events: %w", err)
	}
	return deleted, nil
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
			FROM registered_events WHERE app_id = ANY($1)
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
