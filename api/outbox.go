package api

import (
	"context"
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
type outbox struct {
	queue   chan db.Event
	started chan string
}

// RunOutbox makes publishes answer before their workflow starts, and starts those workflows in
// the background until ctx ends. Call it before serving; without it, a publish starts its
// workflow before answering.
func (s *Server) RunOutbox(ctx context.Context) {
	s.out = &outbox{queue: make(chan db.Event, outboxSize), started: make(chan string, outboxSize)}
	for range outboxStarters {
		go s.startFromOutbox(ctx)
	}
	go s.markStarted(ctx)
}

// startFromOutbox starts queued events' workflows, retrying one while the engine refuses it.
func (s *Server) startFromOutbox(ctx context.Context) {
	for {
		var ev db.Event
		select {
		case <-ctx.Done():
			return
		case ev = <-s.out.queue:
		}
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
			err := s.startEvent(ctx, ev, true)
			if err == nil {
				select {
				case s.out.started <- ev.ID:
				case <-ctx.Done(): // unmarked: the reconciler's start is rejected as a duplicate
				}
				break
			}
			s.Log.Warn("event workflow not started yet; retrying", "event_id", ev.ID, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
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
