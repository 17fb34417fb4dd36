package workflows

import (
	"fmt"
	"time"

	"github.com/hookd/hookd/activities"
	"go.temporal.io/sdk/workflow"
)

// ReplayInput replays several finished deliveries, then tells the caller at the callback URL the
// operation NotifyOperation keeps (the URL may hold a token: it stays out of history).
type ReplayInput struct {
	RequestID string
	EventID   string // as the publisher knows it
	AppID     string
	// NotifyOperation names the replay operation whose row holds the callback URL ("" for none);
	// NotifyHost is that URL's host, for the callback's summary.
	NotifyOperation string `json:",omitempty"`
	NotifyHost      string `json:",omitempty"`
	// NotifyURL is the callback URL as inputs of older releases carried it; still used when set.
	NotifyURL  string `json:",omitempty"`
	Deliveries []DeliveryInput
	// SearchAttributes is true when the server has hookd's attributes registered.
	SearchAttributes bool
}

// ReplayWorkflow runs replays of an event's deliveries and sends one callback when all have ended.
// Since version 1 it starts them as workflows of their own (not children: no limit of 2,000) and
// waits for the last to signal that all ended.
func ReplayWorkflow(ctx workflow.Context, in ReplayInput) ([]activities.Outcome, error) {
	if workflow.GetVersion(ctx, "replay-independent-deliveries", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		outcomes := runDeliveries(ctx, in.Deliveries)
		if !in.notifies() {
			return outcomes, nil
		}
		return outcomes, sendCallbackV1(ctx, activities.CallbackInput{ID: in.RequestID, AppID: in.AppID, URL: in.NotifyURL,
			URLOfOperation: in.NotifyOperation, Host: in.NotifyHost, EventType: "event.replayed", Service: "webhooks",
			Data: map[string]any{"requestId": in.RequestID, "eventId": in.EventID, "deliveries": outcomes}}, in.SearchAttributes)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 5 * time.Minute, RetryPolicy: dbRetry})
	for i := 0; i < len(in.Deliveries); i += startChunk {
		chunk := in.Deliveries[i:min(i+startChunk, len(in.Deliveries))]
		if err := workflow.ExecuteActivity(actx, StartDeliveriesActivity, chunk).Get(ctx, nil); err != nil {
			return nil, fmt.Errorf("start replays of %s: %w", in.EventID, err)
		}
	}
	group := workflow.GetInfo(ctx).WorkflowExecution.ID
	if err := waitForGroup(ctx, false, group); err != nil {
		return nil, err
	}
	var outcomes []activities.Outcome
	if err := workflow.ExecuteActivity(actx, a.GroupOutcomes, group).Get(ctx, &outcomes); err != nil {
		return nil, fmt.Errorf("outcomes of %s: %w", group, err)
	}
	if !in.notifies() {
		return outcomes, nil
	}
	return outcomes, sendCallback(ctx, activities.CallbackInput{ID: in.RequestID, AppID: in.AppID, URL: in.NotifyURL,
		URLOfOperation: in.NotifyOperation, Host: in.NotifyHost, EventType: "event.replayed", Service: "webhooks", OutcomesOf: group,
		Data: map[string]any{"requestId": in.RequestID, "eventId": in.EventID}}, in.SearchAttributes)
}

// notifies reports whether the replay ends with a callback.
func (in ReplayInput) notifies() bool { return in.NotifyURL != "" || in.NotifyOperation != "" }

// StartDeliveriesActivity is the activity that starts DeliveryWorkflows from their inputs
// (registered by the worker, which holds the Temporal client); startChunk is how many one call starts.
const (
	StartDeliveriesActivity = "StartDeliveries"
	startChunk              = 200
)
