package db

import (
	"context"
	"fmt"
	"time"
)

// Expired counts the rows one retention step deleted.
type Expired struct {
	Events, Deliveries, Attempts int
}

// DeleteExpired deletes up to limit events received before cutoff, with their deliveries and
// attempts, in one short transaction. An event is kept while any of its deliveries is pending or
// while it was never dispatched (its workflow may still have work to do). Rows locked by a running
// transaction are skipped, not waited for.
func (r *Repo) DeleteExpired(ctx context.Context, cutoff time.Time, limit int) (Expired, error) {
	var n Expired
	err := r.db.QueryRowxContext(ctx, `
		WITH doomed AS (
			SELECT e.id FROM events e
			WHERE e.received_at < $1 AND e.dispatched_at IS NOT NULL
			  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
			ORDER BY e.received_at LIMIT $2
			FOR UPDATE SKIP LOCKED
		), attempts AS (
			DELETE FROM delivery_attempts a USING deliveries d
			WHERE a.delivery_id = d.id AND d.event_id IN (SELECT id FROM doomed) RETURNING 1
		), dels AS (
			DELETE FROM deliveries WHERE event_id IN (SELECT id FROM doomed) RETURNING 1
		), evs AS (
			DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1
		)
		SELECT (SELECT count(*) FROM evs), (SELECT count(*) FROM dels), (SELECT count(*) FROM attempts)`,
		cutoff, limit).Scan(&n.Events, &n.Deliveries, &n.Attempts)
	if err != nil {
		return Expired{}, fmt.Errorf("delete events before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	return n, nil
}
