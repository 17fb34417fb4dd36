// Package background holds the API process's loops that run beside its requests: the outbox that
// starts stored events' workflows, the reconciler that finds work nothing runs, and the listener
// that drops cache entries other processes changed. Package service starts them.
package background

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/engine"
)

const (
	// outboxSize bounds the events waiting in memory for their workflow's start; past it an event
	// waits for the reconciler (it is stored either way).
	outboxSize = 10_000
	// outboxStarters is how many workflow starts are in flight at once.
	outboxStarters = 32
	// markBatch and markEvery bound how many started events one UPDATE records, and how late.
	markBatch = 256
	markEvery = 100 * time.Millisecond
)

// outbox decouples a publish from the engine: the API answers once the event is stored, and
// starts the event's workflow here, in the background. An event it cannot start (the engine is
// down, the process dies, the queue is full) is still stored without started_at: the reconciler
// starts it after HOOKD_RECONCILE_GRACE. Starting twice is harmless (one workflow id per event,
// duplicates rejected by the engine).
//
// The queue holds event keys, not events: an event's payload may be 256 KiB, and with the engine
// down 10,000 queued rows would have been 2.6 GiB of the API's memory. A starter reads the event
// back (reads from concurrent starters share a statement, see db.Repo.LoadEvent), so what waits
// in memory is the key alone, and at most outboxStarters events are held at once.
type Outbox struct {
	repo    *db.Repo
	engine  *engine.Gateway
	log     *slog.Logger
	queue   chan string
	started chan string
}

// NewOutbox is an outbox starting events through gw. Dispatch hands it events; Run starts them.
func NewOutbox(repo *db.Repo, gw *engine.Gateway, log *slog.Logger) *Outbox {
	return &Outbox{repo: repo, engine: gw, log: log, queue: make(chan string, outboxSize), started: make(chan string, outboxSize)}
}

// Dispatch queues a stored event for its workflow's start. A full queue is no error: the event is
// stored, and the reconciler starts it.
func (o *Outbox) Dispatch(ctx context.Context, ev db.Event) error {
	select {
	case o.queue <- ev.ID:
	default:
		o.log.Debug("outbox full: the reconciler will start the event", "event_id", ev.ID)
	}
	return nil
}

// Run starts queued events' workflows until ctx ends. wait returns once ctx has ended and the
// outbox has recorded what it started: call it before closing the database.
func (o *Outbox) Run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for range outboxStarters {
		wg.Go(func() { o.startFromOutbox(ctx) })
	}
	wg.Go(func() { o.markStarted(ctx) })
	return wg.Wait
}

// startFromOutbox starts queued events' workflows, retrying one while the database or the engine
// refuses it.
func (o *Outbox) startFromOutbox(ctx context.Context) {
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-o.queue:
		}
		if !o.startQueued(ctx, id) {
			return
		}
	}
}

// startQueued reads a queued event and starts its workflow, retrying with backoff; false means
// ctx ended (the event is left to the reconciler).
func (o *Outbox) startQueued(ctx context.Context, id string) bool {
	var ev db.Event
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		var err error
		if ev.ID == "" {
			ev, err = o.repo.LoadEvent(ctx, id)
			if errors.Is(err, db.ErrNotFound) {
				o.log.Debug("queued event is gone; nothing to start", "event_id", id)
				return true
			}
		}
		if err == nil {
			if err = o.engine.StartEventInBackground(ctx, ev); err == nil {
				select {
				case o.started <- ev.ID:
				case <-ctx.Done(): // unmarked: the reconciler's start is rejected as a duplicate
				}
				return true
			}
		}
		o.log.Warn("event workflow not started yet; retrying", "event_id", id, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// markStarted records started events in batches, so that the reconciler leaves them alone; a
// lost batch only costs a second, rejected start.
func (o *Outbox) markStarted(ctx context.Context) {
	t := time.NewTicker(markEvery)
	defer t.Stop()
	var ids []string
	flush := func() {
		if len(ids) == 0 {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := o.repo.MarkStarted(fctx, ids); err != nil {
			o.log.Warn("started events not marked; the reconciler will look at them", "count", len(ids), "error", err)
		}
		ids = ids[:0]
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case id := <-o.started:
			ids = append(ids, id)
			if len(ids) >= markBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}
