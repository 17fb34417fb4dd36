package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hookd/hookd/db"
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
type outbox struct {
	queue   chan string
	started chan string
}

// RunOutbox makes publishes answer before their workflow starts, and starts those workflows in
// the background until ctx ends. Call it before serving; without it, a publish starts its
// workflow before answering. wait returns once ctx has ended and the outbox has recorded what it
// started: call it before closing the database.
func (s *Server) RunOutbox(ctx context.Context) (wait func()) {
	s.out = &outbox{queue: make(chan string, outboxSize), started: make(chan string, outboxSize)}
	var wg sync.WaitGroup
	for range outboxStarters {
		wg.Go(func() { s.startFromOutbox(ctx) })
	}
	wg.Go(func() { s.markStarted(ctx) })
	return wg.Wait
}

// startFromOutbox starts queued events' workflows, retrying one while the database or the engine
// refuses it.
func (s *Server) startFromOutbox(ctx context.Context) {
	for {
		var id string
		select {
		case <-ctx.Done():
			return
		case id = <-s.out.queue:
		}
		if !s.startQueued(ctx, id) {
			return
		}
	}
}

// startQueued reads a queued event and starts its workflow, retrying with backoff; false means
// ctx ended (the event is left to the reconciler).
func (s *Server) startQueued(ctx context.Context, id string) bool {
	var ev db.Event
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		var err error
		if ev.ID == "" {
			ev, err = s.Repo.LoadEvent(ctx, id)
			if errors.Is(err, db.ErrNotFound) {
				s.Log.Debug("queued event is gone; nothing to start", "event_id", id)
				return true
			}
		}
		if err == nil {
			if err = s.gateway().StartEventInBackground(ctx, ev); err == nil {
				select {
				case s.out.started <- ev.ID:
				case <-ctx.Done(): // unmarked: the reconciler's start is rejected as a duplicate
				}
				return true
			}
		}
		s.Log.Warn("event workflow not started yet; retrying", "event_id", id, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// markStarted records started events in batches, so that the reconciler leaves them alone; a
// lost batch only costs a second, rejected start.
func (s *Server) markStarted(ctx context.Context) {
	t := time.NewTicker(markEvery)
	defer t.Stop()
	var ids []string
	flush := func() {
		if len(ids) == 0 {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.Repo.MarkStarted(fctx, ids); err != nil {
			s.Log.Warn("started events not marked; the reconciler will look at them", "count", len(ids), "error", err)
		}
		ids = ids[:0]
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case id := <-s.out.started:
			ids = append(ids, id)
			if len(ids) >= markBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}
