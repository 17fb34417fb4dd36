package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

const eventColumns = `seq, id, app_id, topic, type, payload, workflow_id, received_at, dispatched_at, kind, target_url,
	notify_url, txid::text AS txid, client_id`

// InsertEvent stores an event unless its id exists. It returns the stored row and whether this call
// stored it (false: the id was taken, and the row is the zero Event).
func (r *Repo) InsertEvent(ctx context.Context, e Event) (Event, bool, error) {
	if e.Kind == "" {
		e.Kind = KindEvent
	}
	if e.ClientID == "" {
		e.ClientID = e.ID
	}
	var got Event
	err := r.db.GetContext(ctx, &got, `INSERT INTO events (id, app_id, topic, type, payload, workflow_id, kind, target_url,
		notify_url, client_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING RETURNING `+eventColumns,
		e.ID, e.AppID, e.Topic, e.Type, e.Payload, e.WorkflowID, e.Kind, e.TargetURL, e.NotifyURL, e.ClientID)
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("insert event %s: %w", e.ID, err)
	}
	return got, true, nil
}

// GetEvent loads an event within scope.
func (r *Repo) GetEvent(ctx context.Context, scope Scope, id string) (Event, error) {
	var e Event
	err := r.db.GetContext(ctx, &e, `SELECT `+eventColumns+` FROM events WHERE id = $1 AND ($2 OR app_id = $3)`, id, scope.any, scope.app)
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, notFound(err))
	}
	return e, nil
}

// GetEventByClientID finds an app's event by the id the app gave it.
func (r *Repo) GetEventByClientID(ctx context.Context, appID, clientID string) (Event, error) {
	var e Event
	err := r.db.GetContext(ctx, &e, `SELECT `+eventColumns+` FROM events WHERE app_id = $1 AND client_id = $2`, appID, clientID)
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", clientID, notFound(err))
	}
	return e, nil
}

// ClientEventID turns an event key ("<app id>/<event id>") back into the id its publisher gave it.
func ClientEventID(key string) string {
	if strings.HasPrefix(key, "app:") {
		if i := strings.IndexByte(key, '/'); i > 0 {
			return key[i+1:]
		}
	}
	return key // events stored before ids were per app
}

// MarkDispatched records that an event's deliveries exist, so the reconciler leaves it alone.
func (r *Repo) MarkDispatched(ctx context.Context, id string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE events SET dispatched_at = now() WHERE id = $1 AND dispatched_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("mark event %s dispatched: %w", id, err)
	}
	return nil
}

// Unstarted lists events received before the cutoff whose workflow is not known to have started
// (the outbox has not marked them, and no workflow dispatched them).
func (r *Repo) Unstarted(ctx context.Context, before time.Time, limit int) ([]Event, error) {
	var out []Event
	err := r.db.SelectContext(ctx, &out, `SELECT `+eventColumns+` FROM events
		WHERE started_at IS NULL AND dispatched_at IS NULL AND received_at < $1 ORDER BY received_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("unstarted events: %w", err)
	}
	return out, nil
}

// MarkStarted records that the workflows of these events were started.
func (r *Repo) MarkStarted(ctx context.Context, ids []string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE events SET started_at = now() WHERE id = ANY($1) AND started_at IS NULL`, pq.StringArray(ids))
	if err != nil {
		return fmt.Errorf("mark %d events started: %w", len(ids), err)
	}
	return nil
}

// PollFilter narrows an event listing.
type PollFilter struct {
	AppID     string
	Topic     string
	Type      string
	Since     time.Time
	AfterTxID string // cursor: (txid, seq) of the last event seen
	AfterSeq  int64
	Limit     int
}

// PollEvents lists the events an app may see (it published them, or they were delivered to it) in
// a stable order: an event appears only once every transaction that could precede it is finished,
// so a cursor never skips an event committed late.
func (r *Repo) PollEvents(ctx context.Context, f PollFilter) ([]Event, error) {
	after := f.AfterTxID
	if after == "" {
		after = "0"
	}
	var out []Event
	// Two branches, each served by an index (events_poll; deliveries_event_app, then the events of
	// those deliveries one by one), instead of one OR that only a scan of every event can answer.
	const window = `AND ($2 = '' OR e.topic = $2) AND ($3 = '' OR e.type = $3) AND e.received_at >= $4
		  AND (e.txid, e.seq) > ($5::xid8, $6) AND e.txid < pg_snapshot_xmin(pg_current_snapshot())`
	cols := prefixed("e", eventColumns) + `, e.txid AS txid8, e.seq AS seq8`
	err := r.db.SelectContext(ctx, &out, `SELECT `+eventColumns+` FROM (
		(SELECT `+cols+` FROM events e WHERE e.app_id = $1 `+window+` ORDER BY e.txid, e.seq LIMIT $7)
		UNION ALL
		(SELECT e.* FROM (SELECT DISTINCT d.event_id FROM deliveries d WHERE d.app_id = $1) d
		 CROSS JOIN LATERAL (SELECT `+cols+` FROM events e WHERE e.id = d.event_id AND e.app_id <> $1 `+window+` LIMIT 1) e
		 ORDER BY e.txid8, e.seq8 LIMIT $7)
		) e ORDER BY txid8, seq8 LIMIT $7`, f.AppID, f.Topic, f.Type, f.Since, after, f.AfterSeq, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("poll events: %w", err)
	}
	return out, nil
}
