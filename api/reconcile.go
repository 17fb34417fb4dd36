package api

import (
	"context"
	"time"
)

// Reconcile starts the workflows of events that were stored but never started (the API died between
// the two, or the engine was down). It runs until ctx ends.
func (s *Server) Reconcile(ctx context.Context, every, grace time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.ReconcileOnce(ctx, grace); err != nil {
			s.Log.Warn("reconcile", "error", err)
		} else if n > 0 {
			s.Log.Info("reconciled events whose workflow had not started", "count", n)
		}
	}
}

// ReconcileOnce starts the workflow of every event older than grace that was never dispatched.
func (s *Server) ReconcileOnce(ctx context.Context, grace time.Duration) (int, error) {
	evs, err := s.Repo.Undispatched(ctx, time.Now().Add(-grace), 500)
	if err != nil {
		return 0, err
	}
	for i, ev := range evs {
		if err := s.StartEvent(ctx, ev); err != nil {
			return i, err
		}
	}
	return len(evs), nil
}
