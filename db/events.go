package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

const eventColumns = `seq, id, app_id, topic, type, payload, workflow_id, received_at, dispatched_at, kind, target_url,
	notify_url, txid::text AS txid, client_id, trace_parent`

// InsertEvent stores an event unless its id exists. It returns the stored row and whether this call
// stored it (false: the id was taken, and the row is the zero Event). Concurrent calls share one
// statement and one commit (see batcher).
func (r *Repo) InsertEvent(ctx context.Context, e Event) (Event, bool, error) {
	if e.Kind == "" {
		e.Kind = KindEvent
	}
	if e.ClientID == "" {
		e.ClientID = e.ID
	}
	res, err := r.eventInserts.do(ctx, e)
	if err != nil {
		return Event{}, false, fmt.Errorf("insert event %s: %w", e.ID, err)
	}
	return res.Event, res.inserted, nil
}

type insertedEvent struct {
	Event
	inserted bool
}

// insertEvents stores a batch of events in one statement. Of two inputs with one id, only the
// first is written: the other is told the id was taken, as if it had come second.
func (r *Repo) insertEvents(ctx context.Context, es []Event) ([]insertedEvent, error) {
	first := make(map[string]int, len(es))
	var ids, apps, topics, types, payloads, wfs, kinds, clients []string
	var targets, notifies, traces []sql.NullString
	for i, e := range es {
		if _, dup := first[e.ID]; dup {
			continue
		}
		first[e.ID] = i
		ids, apps, topics, types = append(ids, e.ID), append(apps, e.AppID), append(topics, e.Topic), append(types, e.Type)
		payloads, wfs, kinds, clients = append(payloads, string(e.Payload)), append(wfs, e.WorkflowID), append(kinds, e.Kind), append(clients, e.ClientID)
		targets, notifies, traces = append(targets, e.TargetURL), append(notifies, e.NotifyURL), append(traces, e.TraceParent)
	}
	var got []Event
	err := r.hot.SelectContext(ctx, &got, `INSERT INTO events (id, app_id, topic, type, payload, workflow_id, kind, target_url,
		notify_url, client_id, trace_parent)
		SELECT id, app_id, topic, type, payload::jsonb, workflow_id, kind, target_url, notify_url, client_id, trace_parent
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
			$11::text[])
			AS v(id, app_id, topic, type, payload, workflow_id, kind, target_url, notify_url, client_id, trace_parent)
		ON CONFLICT DO NOTHING RETURNING `+eventColumns,
		pq.StringArray(ids), pq.StringArray(apps), pq.StringArray(topics), pq.StringArray(types), pq.StringArray(payloads),
		pq.StringArray(wfs), pq.StringArray(kinds), pq.GenericArray{A: targets}, pq.GenericArray{A: notifies}, pq.StringArray(clients),
		pq.GenericArray{A: traces})
	if err != nil {
		return nil, fmt.Errorf("insert %d events: %w", len(ids), err)
	}
	out := make([]insertedEvent, len(es))
	for _, g := range got {
		out[first[g.ID]] = insertedEvent{Event: g, inserted: true}
	}
	return out, nil
}

// GetEvent loads an event within scope.
func (r *Repo) GetEvent(ctx context.Context, scope Scope, id string) (Event, error) {
	var e Event
	err := r.hot.GetContext(ctx, &e, `SELECT `+eventColumns+` FROM events WHERE id = $1 AND ($2 OR app_id = $3)`, id, scope.any, scope.app)
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, notFound(err))
	}
	return e, nil
}

// LoadEvent loads an event whatever its app, for the workflows' activities; concurrent calls
// share a statement (see batcher).
func (r *Repo) LoadEvent(ctx context.Context, id string) (Event, error) {
	got, err := r.eventReads.do(ctx, id)
	if err == nil && got.ID == "" {
		err = ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	return got, nil
}

// loadEvents reads a batch of events by id; a missing one is the zero Event.
func (r *Repo) loadEvents(ctx context.Context, ids []string) ([]Event, error) {
	var got []Event
	if err := r.hot.SelectContext(ctx, &got, `SELECT `+eventColumns+` FROM events WHERE id = ANY($1)`, pq.StringArray(ids)); err != nil {
		return nil, fmt.Errorf("get %d events: %w", len(ids), err)
	}
	byID := make(map[string]Event, len(got))
	for _, e := range got {
		byID[e.ID] = e
	}
	out := make([]Event, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
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

// Unstarted lists events received before the cutoff whose workflow is not known to have started
// (the outbox has not marked them, and no workflow dispatched them).
func (r *Repo) Unstarted(ctx context.Context, before time.Time, limit int) ([]Event, error) {
	var out []Event
	err := r.hot.SelectContext(ctx, &out, `SELECT `+eventColumns+` FROM events
		WHERE started_at IS NULL AND dispatched_at IS NULL AND received_at < $1 ORDER BY received_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("unstarted events: %w", err)
	}
	return out, nil
}

// MarkStarted records that the workflows of these events were started. An event dispatched
// already (its workflow usually creates the deliveries before the outbox's batch comes) is left
// alone: the reconciler skips it either way, and each update rewrites the row and its indexes.
func (r *Repo) MarkStarted(ctx context.Context, ids []string) error {
	_, err := r.hot.ExecContext(ctx, `UPDATE events SET started_at = now()
		WHERE id = ANY($1) AND started_at IS NULL AND dispatched_at IS NULL`, pq.StringArray(ids))
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
	// Two branches, each read in poll order from an index (events_poll for the app's own events,
	// event_recipients_poll for other apps' events delivered to it) and stopped at the page's
	// size, instead of one OR that only a scan of every event can answer: a page costs its rows
	// (and those its filters pass over), not the caller's history.
	const window = `AND ($2 = '' OR e.topic = $2) AND ($3 = '' OR e.type = $3) AND e.received_at >= $4
		  AND (e.txid, e.seq) > ($5::xid8, $6) AND e.txid < pg_snapshot_xmin(pg_current_snapshot())`
	cols := prefixed("e", eventColumns) + `, e.txid AS txid8, e.seq AS seq8`
	err := r.db.SelectContext(ctx, &out, `SELECT `+eventColumns+` FROM (
		(SELECT `+cols+` FROM events e WHERE e.app_id = $1 `+window+` ORDER BY e.txid, e.seq LIMIT $7)
		UNION ALL
		(SELECT e.* FROM event_recipients r
		 CROSS JOIN LATERAL (SELECT `+cols+` FROM events e WHERE e.id = r.event_id `+window+`) e
		 WHERE r.app_id = $1 AND (r.txid, r.seq) > ($5::xid8, $6) AND r.txid < pg_snapshot_xmin(pg_current_snapshot())
		 ORDER BY r.txid, r.seq LIMIT $7)
		) e ORDER BY txid8, seq8 LIMIT $7`, f.AppID, f.Topic, f.Type, f.Since, after, f.AfterSeq, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("poll events: %w", err)
	}
	return out, nil
}

// TargetCursor is where a page of an event's deliveries ended: the target (subscription id, or
// callback URL) and replay of its last delivery. The zero value starts at the first page.
type TargetCursor struct {
	Target string
	Replay int
}

// Target is what a delivery goes to, as the deliveries_once index names it: its subscription,
// or for a one-off callback its URL.
func (d Delivery) Target() string {
	if d.SubscriptionID.Valid {
		return d.SubscriptionID.String
	}
	return d.URL
}

// EventDeliveryPage lists up to limit deliveries of an event after the cursor, by target then
// replay: the order of the deliveries_once index, so a page reads its own rows and no others,
// however many deliveries the event has.
func (r *Repo) EventDeliveryPage(ctx context.Context, eventID string, after TargetCursor, limit int) ([]Delivery, error) {
	replay := after.Replay
	if after.Target == "" {
		replay = -1
	}
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE event_id = $1 AND (coalesce(subscription_id, url), replay) > ($2, $3)
		ORDER BY coalesce(subscription_id, url), replay LIMIT $4`, eventID, after.Target, replay, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", eventID, err)
	}
	return out, nil
}

// CountEventTargets counts an event's targets, but stops at most: a caller that refuses events
// with too many learns so without reading them all.
func (r *Repo) CountEventTargets(ctx context.Context, eventID string, most int) (int, error) {
	var n int
	err := r.db.GetContext(ctx, &n, `SELECT count(*) FROM (SELECT DISTINCT coalesce(subscription_id, url) FROM deliveries
		WHERE event_id = $1 ORDER BY 1 LIMIT $2) t`, eventID, most)
	if err != nil {
		return 0, fmt.Errorf("targets of %s: %w", eventID, err)
	}
	return n, nil
}

// LatestDeliveries lists the latest delivery (highest replay) to each of an event's targets, at
// most limit targets, in target order.
func (r *Repo) LatestDeliveries(ctx context.Context, eventID string, limit int) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `SELECT DISTINCT ON (coalesce(subscription_id, url)) `+deliveryColumns+`
		FROM deliveries WHERE event_id = $1 ORDER BY coalesce(subscription_id, url), replay DESC LIMIT $2`, eventID, limit)
	if err != nil {
		return nil, fmt.Errorf("latest deliveries of %s: %w", eventID, err)
	}
	return out, nil
}
