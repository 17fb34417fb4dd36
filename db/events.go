package db

import (
	"context"
	"fmt"
	"time"
)

const eventColumns = `seq, id, app_id, topic, type, payload, workflow_id, received_at, dispatched_at`

// InsertEvent stores an event unless its id exists; it reports whether this call stored it.
func (r *Repo) InsertEvent(ctx context.Context, e Event) (bool, error) {
	res, err := r.db.ExecContext(ctx, `INSERT INTO events (id, app_id, topic, type, payload, workflow_id)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.AppID, e.Topic, e.Type, e.Payload, e.WorkflowID)
	if err != nil {
		return false, fmt.Errorf("insert event %s: %w", e.ID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// GetEvent loads an event; appID "" skips the ownership check (workers).
func (r *Repo) GetEvent(ctx context.Context, appID, id string) (Event, error) {
	var e Event
	err := r.db.GetContext(ctx, &e, `SELECT `+eventColumns+` FROM events WHERE id = $1 AND ($2 = '' OR app_id = $2)`, id, appID)
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, notFound(err))
	}
	return e, nil
}

// MarkDispatched records that an event's deliveries exist, so the reconciler leaves it alone.
func (r *Repo) MarkDispatched(ctx context.Context, id string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE events SET dispatched_at = now() WHERE id = $1 AND dispatched_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("mark event %s dispatched: %w", id, err)
	}
	return nil
}

// Undispatched lists events received before the cutoff whose workflow never dispatched them.
func (r *Repo) Undispatched(ctx context.Context, before time.Time, limit int) ([]Event, error) {
	var out []Event
	err := r.db.SelectContext(ctx, &out, `SELECT `+eventColumns+` FROM events
		WHERE dispatched_at IS NULL AND received_at < $1 ORDER BY received_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("undispatched events: %w", err)
	}
	return out, nil
}
