package activities

import (
	"context"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/webhook"
)

// EventStarter starts a stored event's workflow; one that exists already is not an error.
type EventStarter interface {
	StartEvent(ctx context.Context, ev db.Event) error
}

// emit stores an operational webhook for appID and starts its workflow, stored now or by an
// earlier try of the same activity. If the start fails, the event is stored all the same and the
// API's reconciler starts it.
func (a *Activities) emit(ctx context.Context, appID, typ, key string, data any) error {
	ev, _, err := callbacks.StoreOperational(ctx, a.Repo, appID, typ, key, data)
	if err != nil || ev.ID == "" {
		return err
	}
	if err := a.Events.StartEvent(ctx, ev); err != nil {
		a.Log.Warn("operational webhook stored; the reconciler will start it", "event_id", ev.ID, "error", err)
	}
	return nil
}

// recovered emits delivery.recovered when d, a replay of a delivery that failed, just succeeded
// with attempt n. The attempt stands whatever happens here, so a failure is logged, not returned.
func (a *Activities) recovered(ctx context.Context, ev db.Event, d db.Delivery, n int, r webhook.Result) {
	if callbacks.IsOperational(ev) || d.Replay == 0 {
		return
	}
	failed, err := a.Repo.ReplaysFailure(ctx, d)
	if err == nil && failed {
		d.Status, d.Attempts, d.LastError = delivery.StatusSucceeded, n, ""
		d.LastStatus.Int32, d.LastStatus.Valid = int32(r.Status), true
		err = a.emit(ctx, d.AppID, callbacks.OpDeliveryRecovered, d.ID, callbacks.DeliveryData(d, ev, r.StartedAt.Add(r.Duration)))
	}
	if err != nil {
		a.Log.Error("delivery.recovered not sent", "delivery_id", d.ID, "error", err)
	}
}
