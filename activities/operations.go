package activities

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/tracing"
	"github.com/hookd/hookd/webhook"
)

// OperationsService is the service (topic) of operational webhooks: hookd's own events about an
// app's deliveries and subscriptions, POSTed to the app's operations URL.
const OperationsService = "hookd.operations"

// Operational webhook types (Svix: message.attempt.exhausted, endpoint.disabled/enabled).
const (
	OpDeliveryFailed       = "delivery.failed"
	OpDeliveryRecovered    = "delivery.recovered"
	OpSubscriptionDisabled = "subscription.disabled"
	OpSubscriptionEnabled  = "subscription.enabled"
)

// EventStarter starts a stored event's workflow; one that exists already is not an error.
type EventStarter interface {
	StartEvent(ctx context.Context, ev db.Event) error
}

// OperationalEvent is the stored form of an operational webhook to app: a one-off callback to its
// operations URL, signed with the app's secret, retried, recorded and reported like any other.
// key makes its id, so emitting one event twice (a retried activity) stores it once. ok is false
// when the app has no operations URL.
func OperationalEvent(app db.App, typ, key string, data any) (ev db.Event, ok bool, err error) {
	if app.OperationsURL == "" {
		return db.Event{}, false, nil
	}
	ev, err = CallbackEvent(CallbackInput{ID: "op_" + typ + "_" + key, AppID: app.ID, URL: app.OperationsURL,
		EventType: typ, Service: OperationsService, Data: data})
	return ev, err == nil, err
}

// IsOperational reports whether ev is an operational webhook: its own failures tell no one over
// the same channel (that would loop), only by e-mail.
func IsOperational(ev db.Event) bool {
	return ev.Kind == db.KindCallback && ev.Topic == OperationsService
}

// StoreOperational stores an operational webhook for appID, with the trace of ctx, unless the app
// has no operations URL (ev is then the zero Event). inserted is false when it was stored before
// (its id is made from what it reports).
func StoreOperational(ctx context.Context, repo *db.Repo, appID, typ, key string, data any) (ev db.Event, inserted bool, err error) {
	app, err := repo.GetApp(ctx, appID)
	if err != nil {
		return db.Event{}, false, fmt.Errorf("%s for %s: %w", typ, appID, err)
	}
	ev, ok, err := OperationalEvent(app, typ, key, data)
	if err != nil || !ok {
		return db.Event{}, false, err
	}
	if tp := tracing.TraceParent(ctx); tp != "" {
		ev.TraceParent = sql.NullString{String: tp, Valid: true}
	}
	if _, inserted, err = repo.InsertEvent(ctx, ev); err != nil {
		return db.Event{}, false, fmt.Errorf("%s for %s: %w", typ, appID, err)
	}
	return ev, inserted, nil
}

// emit stores an operational webhook for appID and starts its workflow, stored now or by an
// earlier try of the same activity. If the start fails, the event is stored all the same and the
// API's reconciler starts it.
func (a *Activities) emit(ctx context.Context, appID, typ, key string, data any) error {
	ev, _, err := StoreOperational(ctx, a.Repo, appID, typ, key, data)
	if err != nil || ev.ID == "" {
		return err
	}
	if err := a.Events.StartEvent(ctx, ev); err != nil {
		a.Log.Warn("operational webhook stored; the reconciler will start it", "event_id", ev.ID, "error", err)
	}
	return nil
}

// DeliveryData is what delivery.failed and delivery.recovered say about a delivery.
func DeliveryData(d db.Delivery, ev db.Event, at time.Time) map[string]any {
	out := map[string]any{"deliveryId": d.ID, "status": d.Status, "eventId": ev.ClientID, "eventType": ev.Type, "url": d.URL,
		"attempts": d.Attempts, "replay": d.Replay, "at": at.UTC().Format(time.RFC3339Nano)}
	if d.SubscriptionID.Valid {
		out["subscriptionId"] = d.SubscriptionID.String
	}
	if d.LastStatus.Valid {
		out["lastStatus"] = d.LastStatus.Int32
	}
	if d.LastError != "" {
		out["reason"] = d.LastError
	}
	return out
}

// SubscriptionData is what subscription.disabled and subscription.enabled say; cause is why it
// changed: "failures", "gone", "registry" (the publisher removed the event), "owner".
func SubscriptionData(sub db.Subscription, cause string) map[string]any {
	out := map[string]any{"subscriptionId": sub.ID, "url": sub.URL, "active": sub.Active, "cause": cause,
		"at": sub.UpdatedAt.UTC().Format(time.RFC3339Nano)}
	if sub.DisabledReason != "" {
		out["reason"] = sub.DisabledReason
	}
	return out
}

// SubscriptionChangeKey identifies one change of a subscription's state: the time it was made.
func SubscriptionChangeKey(sub db.Subscription) string {
	return sub.ID + "_" + strconv.FormatInt(sub.UpdatedAt.UnixMicro(), 10)
}

// recovered emits delivery.recovered when d, a replay of a delivery that failed, just succeeded
// with attempt n. The attempt stands whatever happens here, so a failure is logged, not returned.
func (a *Activities) recovered(ctx context.Context, ev db.Event, d db.Delivery, n int, r webhook.Result) {
	if IsOperational(ev) || d.Replay == 0 {
		return
	}
	failed, err := a.Repo.ReplaysFailure(ctx, d)
	if err == nil && failed {
		d.Status, d.Attempts, d.LastError = delivery.StatusSucceeded, n, ""
		d.LastStatus.Int32, d.LastStatus.Valid = int32(r.Status), true
		err = a.emit(ctx, d.AppID, OpDeliveryRecovered, d.ID, DeliveryData(d, ev, r.StartedAt.Add(r.Duration)))
	}
	if err != nil {
		a.Log.Error("delivery.recovered not sent", "delivery_id", d.ID, "error", err)
	}
}
