package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
)

// RecoverPageSize is how many failed deliveries one RecoverPage replays.
const RecoverPageSize = 200

// RecoverInput names a recover operation: its id, the app and the window it replays.
type RecoverInput struct {
	OperationID string
	AppID       string
	Window      db.RecoverWindow
	// Group is the workflow the replays belong to (their group_id), for the operation's counts.
	Group string
}

// RecoverPageResult is what one page did.
type RecoverPageResult struct {
	Replayed int
	Done     bool // the page claimed nothing: the window has no failed delivery left to replay
}

// ReplayStarter starts the DeliveryWorkflows of replays; one that exists is left as it is.
type ReplayStarter interface {
	StartReplays(ctx context.Context, rs []delivery.ReplayStart) error
}

// RecoverPage replays up to RecoverPageSize failed deliveries of the window that no recover has
// replayed yet. Each is claimed for this operation first, so two recovers of overlapping windows
// (or one called twice) never replay a delivery twice; a retry of this activity finds what it
// claimed but did not replay and replays it.
func (a *Activities) RecoverPage(ctx context.Context, in RecoverInput) (RecoverPageResult, error) {
	ds, err := a.Repo.ClaimForRecovery(ctx, in.OperationID, in.AppID, in.Window, RecoverPageSize)
	if err != nil {
		return RecoverPageResult{}, err
	}
	starts := make([]delivery.ReplayStart, 0, len(ds))
	// A page's deliveries share their events and subscriptions: each is read once.
	events := map[string]db.Event{}
	policies := map[string]delivery.Policy{"": delivery.PolicyFor(a.Config, db.RetryPolicy{})}
	for _, d := range ds {
		ev, ok := events[d.EventID]
		if !ok {
			if ev, err = a.event(ctx, d.EventID); err != nil {
				return RecoverPageResult{}, fmt.Errorf("recover %s: %w", d.ID, err)
			}
			events[d.EventID] = ev
		}
		pol, ok := policies[d.SubscriptionID.String]
		if !ok {
			sub, err := a.Repo.GetSubscription(ctx, db.AnyApp(), d.SubscriptionID.String)
			if err != nil {
				return RecoverPageResult{}, fmt.Errorf("recover %s: %w", d.ID, err)
			}
			pol = delivery.PolicyFor(a.Config, sub.RetryPolicy)
			policies[d.SubscriptionID.String] = pol
		}
		nd, retry, err := a.Repo.PrepareReplay(ctx, d, in.Group, pol)
		if errors.Is(err, db.ErrConflict) {
			continue // a replay of it is being made right now (by hand): that one stands
		}
		if err != nil {
			return RecoverPageResult{}, fmt.Errorf("recover %s: %w", d.ID, err)
		}
		starts = append(starts, delivery.ReplayStart{
			Retry:   retry,
			EventID: d.EventID, EventType: ev.Type, Topic: ev.Topic, Replay: nd.Replay,
		})
	}
	if err := a.Replays.StartReplays(ctx, starts); err != nil {
		return RecoverPageResult{}, fmt.Errorf("recover: %w", err)
	}
	// Done only when nothing was claimed: a short page does not mean the window is empty, since a
	// row another recover claimed while this one waited for its lock drops out of the page.
	return RecoverPageResult{Replayed: len(starts), Done: len(ds) == 0}, nil
}

// FinishOperation records how an operation ended.
func (a *Activities) FinishOperation(ctx context.Context, id, status string) error {
	return a.Repo.FinishOperation(ctx, id, status)
}
