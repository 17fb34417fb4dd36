package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// SchemasChannel is the PostgreSQL notification channel on which the id of an app whose
// registered events changed (their schemas with them) is sent: every API process drops the app's
// compiled schemas.
const SchemasChannel = "hookd_event_schemas"

// notifySchemas tells every API process, when tx commits, that appID's registered events changed.
func notifySchemas(ctx context.Context, tx *sqlx.Tx, appID string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, SchemasChannel, appID)
	return err
}

// EventSchema is the schema of one registered event that a published event must satisfy.
type EventSchema struct {
	ID        int64     `db:"id"`
	Topic     string    `db:"topic"`
	Name      string    `db:"name"`
	Schema    []byte    `db:"schema"`
	UpdatedAt time.Time `db:"updated_at"`
}

// EventSchemas lists the schemas of an app's registered events of one event type, on every topic
// (a publish may name none). Events without a schema are left out.
func (r *Repo) EventSchemas(ctx context.Context, appID, eventType string) ([]EventSchema, error) {
	var out []EventSchema
	err := r.db.SelectContext(ctx, &out, `SELECT id, topic, name, schema::text AS schema, updated_at FROM registered_events
		WHERE app_id = $1 AND event_type = $2 AND schema IS NOT NULL AND deleted_at IS NULL
		ORDER BY topic, name, id LIMIT 100`, appID, eventType)
	if err != nil {
		return nil, fmt.Errorf("schemas of %s/%s: %w", appID, eventType, err)
	}
	return out, nil
}

// CatalogEntry is a registered event as the catalog shows it: with its publisher's name and the
// permissions subscribing to it needs.
type CatalogEntry struct {
	RegisteredEvent
	PublisherName string         `db:"publisher_name" json:"publisherName"`
	Permissions   pq.StringArray `db:"publisher_permissions" json:"permissions"`
}

// CatalogCursor is where a catalog page starts: after this (app, topic, name, id).
type CatalogCursor struct {
	AppID, Topic, Name string
	ID                 int64
}

// CatalogFilter narrows the catalog: "" matches everything.
type CatalogFilter struct {
	AppID, Topic, EventType string
}

// Catalog pages through the registered events viewer may subscribe to: its own, and those of
// every publisher with no permissions or one of the viewer's (all of them when viewer is nil, the
// operator), ordered by publisher, topic and name.
func (r *Repo) Catalog(ctx context.Context, viewer *App, f CatalogFilter, after CatalogCursor, limit int) ([]CatalogEntry, error) {
	all, viewerID, perms := viewer == nil, "", pq.StringArray{}
	if viewer != nil {
		viewerID, perms = viewer.ID, viewer.Permissions
	}
	var out []CatalogEntry
	err := r.db.SelectContext(ctx, &out, `SELECT e.id, e.app_id, e.topic, e.name, e.description, e.event_type,
			e.filter_logic, e.type, e.get_api_path, e.schema, e.examples, e.deprecated, e.deprecation_note, e.created_at,
			e.updated_at, a.name AS publisher_name, a.permissions AS publisher_permissions
		FROM registered_events e JOIN apps a ON a.id = e.app_id
		WHERE e.deleted_at IS NULL AND (e.app_id, e.topic, e.name, e.id) > ($1, $2, $3, $4)
		  AND ($5 OR e.app_id = $6 OR cardinality(a.permissions) = 0 OR a.permissions && $7::text[])
		  AND ($8 = '' OR e.app_id = $8) AND ($9 = '' OR e.topic = $9) AND ($10 = '' OR e.event_type = $10)
		ORDER BY e.app_id, e.topic, e.name, e.id LIMIT $11`,
		after.AppID, after.Topic, after.Name, after.ID, all, viewerID, perms, f.AppID, f.Topic, f.EventType, limit)
	if err != nil {
		return nil, fmt.Errorf("event catalog: %w", err)
	}
	return out, nil
}

// ErrRateLimited is a request over its rate limit; RateLimitError says when to try again.
var ErrRateLimited = errors.New("rate limited")

// RateLimitError is ErrRateLimited with the wait before the next request may pass.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited: retry after %s", e.RetryAfter)
}
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// InsertTestSend stores a test send: its event (kind test) and its one delivery (test), unless the
// subscription had perMinute test sends in the last minute (a *RateLimitError then). The count
// holds across API processes: the subscription's row is locked while it is taken.
func (r *Repo) InsertTestSend(ctx context.Context, ev Event, d Delivery, perMinute int) (Event, Delivery, error) {
	var gotEv Event
	var gotD Delivery
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		var one int
		if err := tx.GetContext(ctx, &one, `SELECT 1 FROM subscriptions WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`,
			d.SubscriptionID.String); err != nil {
			return notFound(err)
		}
		var recent struct {
			N      int       `db:"n"`
			Oldest time.Time `db:"oldest"`
			Now    time.Time `db:"now"`
		}
		if err := tx.GetContext(ctx, &recent, `SELECT count(*) AS n, coalesce(min(created_at), now()) AS oldest, now() AS now
			FROM (SELECT created_at FROM deliveries WHERE subscription_id = $1 AND test AND created_at > now() - interval '1 minute'
				ORDER BY created_at DESC LIMIT $2) t`, d.SubscriptionID.String, perMinute); err != nil {
			return err
		}
		if recent.N >= perMinute {
			return &RateLimitError{RetryAfter: max(time.Second, recent.Oldest.Add(time.Minute).Sub(recent.Now))}
		}
		if err := tx.GetContext(ctx, &gotEv, `INSERT INTO events (id, app_id, topic, type, payload, workflow_id, kind,
				client_id, trace_parent)
			VALUES ($1, $2, $3, $4, $5, $6, 'test', $7, $8) RETURNING `+eventColumns,
			ev.ID, ev.AppID, ev.Topic, ev.Type, ev.Payload, ev.WorkflowID, ev.ClientID, ev.TraceParent); err != nil {
			return err
		}
		return tx.GetContext(ctx, &gotD, `INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, workflow_id,
				group_id, test)
			VALUES ($1, $2, $3, $4, $5, $6, $7, true) RETURNING `+deliveryColumns,
			d.ID, gotEv.ID, d.SubscriptionID, d.AppID, d.URL, d.WorkflowID, gotEv.WorkflowID)
	})
	if err != nil {
		return Event{}, Delivery{}, fmt.Errorf("test send to %s: %w", d.SubscriptionID.String, err)
	}
	return gotEv, gotD, nil
}

// TestDelivery is the one delivery of a test send's event.
func (r *Repo) TestDelivery(ctx context.Context, eventID string) (Delivery, error) {
	var d Delivery
	err := r.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+` FROM deliveries WHERE event_id = $1 AND test AND replay = 0`, eventID)
	if err != nil {
		return Delivery{}, fmt.Errorf("test delivery of %s: %w", eventID, notFound(err))
	}
	return d, nil
}

// RegisteredEventOfType is an app's first registered event (by topic and name) of an event type.
func (r *Repo) RegisteredEventOfType(ctx context.Context, appID, eventType string) (RegisteredEvent, error) {
	var e RegisteredEvent
	err := r.db.GetContext(ctx, &e, `SELECT `+registeredColumns+` FROM registered_events
		WHERE app_id = $1 AND event_type = $2 AND deleted_at IS NULL ORDER BY topic, name, id LIMIT 1`, appID, eventType)
	if err != nil {
		return RegisteredEvent{}, fmt.Errorf("registered event of type %q: %w", eventType, notFound(err))
	}
	return e, nil
}
