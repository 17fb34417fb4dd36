// Package callbacks holds the events hookd sends on its own behalf: one-off callbacks (a
// publisher's callbackURL, a replay's or the API's POST /v1/callbacks) and operational webhooks
// (callbacks to an app's operations URL about its deliveries and subscriptions). The use cases
// store them and the activities send and emit them, so they live below both.
package callbacks

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/tracing"
)

// Callback is a one-off callback to store: an event of kind callback delivered to URL only.
type Callback struct {
	ID        string // the request id the caller knows (the app qualifies it)
	AppID     string
	URL       string
	EventType string
	Service   string // the event's topic
	Data      any
}

// Event is the event row of a one-off callback.
func (c Callback) Event() (db.Event, error) {
	data, err := json.Marshal(c.Data)
	if err != nil {
		return db.Event{}, fmt.Errorf("callback %s: %w", c.ID, err)
	}
	key := delivery.EventKey(c.AppID, c.ID)
	return db.Event{ID: key, ClientID: c.ID, AppID: c.AppID, Topic: c.Service, Type: c.EventType, Payload: data,
		WorkflowID: delivery.EventWorkflowID(key), Kind: db.KindCallback,
		TargetURL: sql.NullString{String: c.URL, Valid: c.URL != ""}}, nil
}

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

// OperationalEvent is the stored form of an operational webhook to app: a one-off callback to its
// operations URL, signed with the app's secret, retried, recorded and reported like any other.
// key makes its id, so emitting one event twice (a retried activity) stores it once. ok is false
// when the app has no operations URL.
func OperationalEvent(app db.App, typ, key string, data any) (ev db.Event, ok bool, err error) {
	if app.OperationsURL == "" {
		return db.Event{}, false, nil
	}
	ev, err = Callback{ID: "op_" + typ + "_" + key, AppID: app.ID, URL: app.OperationsURL,
		EventType: typ, Service: OperationsService, Data: data}.Event()
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
