package background

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/usecase"
	"github.com/hookd/hookd/workflows"
)

// Reconciler finds work that nothing runs: events stored but never started, removals whose
// follow-up never started, pending deliveries without a running workflow. Every API process runs
// one (see the notes on a Temporal Schedule instead in README's design); what it does is safe to
// do twice.
type Reconciler struct {
	Repo   *db.Repo
	Engine *engine.Gateway
	Cases  *usecase.Service // the retry policy of a delivery it restarts
	Config config.Config
	Log    *slog.Logger
}

// Reconcile starts the workflows of events that were stored but never started (the API died between
// the two, or the engine was down), and looks after pending deliveries that no workflow runs. It
// runs until ctx ends.
func (s *Reconciler) Run(ctx context.Context, every, grace time.Duration) {
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
		if err := s.ReconcileRemovals(ctx, grace); err != nil {
			s.Log.Warn("reconcile removals", "error", err)
		}
		if started, ended, err := s.ReconcileDeliveries(ctx, s.Config.ReconcileDeliveryGrace, 100); err != nil {
			s.Log.Warn("reconcile deliveries", "error", err)
		} else if started+ended > 0 {
			s.Log.Info("reconciled deliveries that had no running workflow", "started", started, "ended", ended)
		}
	}
}

// ReconcileOnce starts the workflow of every event older than grace that is neither known to be
// started nor dispatched: the outbox could not take it, or the process died before it started it.
func (s *Reconciler) ReconcileOnce(ctx context.Context, grace time.Duration) (int, error) {
	evs, err := s.Repo.Unstarted(ctx, time.Now().Add(-grace), 500)
	if err != nil {
		return 0, err
	}
	ids := make([]string, 0, len(evs))
	defer func() {
		if len(ids) > 0 {
			if err := s.Repo.MarkStarted(context.WithoutCancel(ctx), ids); err != nil {
				s.Log.Warn("reconciled events not marked started", "count", len(ids), "error", err)
			}
		}
	}()
	for _, ev := range evs {
		if err := s.Engine.StartEvent(ctx, ev); err != nil {
			return len(ids), err
		}
		ids = append(ids, ev.ID)
	}
	return len(ids), nil
}

// ReconcileRemovals starts the follow-up of registered events removed more than grace ago whose
// subscribers are not all told yet (the API could not start it, or it failed).
func (s *Reconciler) ReconcileRemovals(ctx context.Context, grace time.Duration) error {
	ids, err := s.Repo.UntoldRemovals(ctx, grace, 100)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.Engine.StartRemoval(ctx, id); err != nil {
			s.Log.Warn("removal follow-up left to the next round", "registered_event_id", id, "error", err)
		}
	}
	return nil
}

// ReconcileDeliveries looks, at most limit at a time, at pending deliveries nothing changed for
// grace and makes sure a workflow runs each: one whose workflow never started (a replay whose
// start failed, a fan-out whose event workflow ended early) is started; one whose workflow closed
// without finishing it (terminated in the Web UI, say) is ended with the reason. It returns how
// many it started and ended.
func (s *Reconciler) ReconcileDeliveries(ctx context.Context, grace time.Duration, limit int) (started, ended int, err error) {
	ds, err := s.Repo.Unattended(ctx, time.Now().Add(-grace), limit)
	if err != nil {
		return 0, 0, err
	}
	for _, d := range ds {
		st, err := s.Engine.Status(ctx, d.WorkflowID)
		if err != nil {
			return started, ended, err
		}
		switch st {
		case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			continue
		case enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED: // no such workflow
			if d.Replay == 0 {
				// The event's workflow starts it once the first attempt failed; while that workflow
				// runs, it is not an orphan.
				ev, err := s.Repo.GetEvent(ctx, db.AnyApp(), d.EventID)
				if err != nil {
					return started, ended, err
				}
				if est, err := s.Engine.Status(ctx, ev.WorkflowID); err != nil || est == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
					if err != nil {
						return started, ended, err
					}
					continue
				}
			}
			if err := s.restartDelivery(ctx, d); err != nil {
				return started, ended, err
			}
			started++
		default:
			status := delivery.StatusFailed
			if st == enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED || st == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
				status = delivery.StatusCancelled
			}
			reason := fmt.Sprintf("its workflow %s ended (%s) without finishing it", d.WorkflowID, strings.ToLower(st.String()))
			if _, err := s.Repo.FinishDelivery(ctx, d.ID, status, reason, 0, false); err != nil {
				return started, ended, err
			}
			if g, err := s.Repo.EndedGroup(ctx, d.ID); err == nil && g != "" {
				_ = s.Engine.GroupEnded(ctx, g)
			}
			ended++
		}
	}
	return started, ended, nil
}

// restartDelivery starts the DeliveryWorkflow of a pending delivery that has none: it carries on
// from the attempts in the ledger, under its subscription's current policy.
func (s *Reconciler) restartDelivery(ctx context.Context, d db.Delivery) error {
	ev, err := s.Repo.GetEvent(ctx, db.AnyApp(), d.EventID)
	if err != nil {
		return err
	}
	pol, err := s.Cases.PolicyOf(ctx, d)
	if err != nil {
		return err
	}
	if err := s.Repo.InterruptAttempts(ctx, []string{d.ID}); err != nil {
		return err
	}
	// The ledger counts a claimed attempt that was never recorded; the delivery's row does not.
	last, err := s.Repo.LastAttempt(ctx, d.ID)
	if err != nil {
		return err
	}
	in := workflows.DeliveryInput{Retry: d.Retry(pol, max(d.Attempts, last), d.URL), EventID: d.EventID, EventType: ev.Type, Topic: ev.Topic, Replay: d.Replay}
	if err := s.Engine.StartDelivery(ctx, in); err != nil {
		return fmt.Errorf("restart %s: %w", d.ID, err)
	}
	s.Log.Info("restarted a delivery that had no workflow", "delivery_id", d.ID, "workflow_id", d.WorkflowID)
	return nil
}
