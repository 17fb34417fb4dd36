package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// EventWorkflowV1Type is the type name EventWorkflowV1 runs under.
const EventWorkflowV1Type = "EventWorkflow"

// EventWorkflowV1 is the event workflow of the first releases, registered under the type name
// "EventWorkflow": one FanOut over every subscriber, then a child DeliveryWorkflow per failed first
// attempt (which reaches Temporal's limit of 2,000 pending children at large fan-outs). New events
// start EventWorkflowV2; this one stays registered, unchanged, until no run of it is open (its
// recorded histories in testdata must keep replaying).
func EventWorkflowV1(ctx workflow.Context, in EventInput) (EventResult, error) {
	var fut workflow.Future
	if in.LocalFanOut {
		// A crashed worker's workflow task times out and the next worker runs FanOut again; it is
		// idempotent, so that costs at most repeated POSTs with the same webhook-id.
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 15 * time.Minute,
			RetryPolicy:         dbRetry,
		})
		fut = workflow.ExecuteLocalActivity(lctx, a.FanOut, activities.FanOutInput{EventID: in.EventID})
	} else {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 15 * time.Minute,
			// A crashed worker's fan-out is retried elsewhere after this long without a heartbeat.
			HeartbeatTimeout: 10 * time.Second,
			RetryPolicy:      dbRetry,
		})
		fut = workflow.ExecuteActivity(actx, a.FanOut, activities.FanOutInput{EventID: in.EventID})
	}
	var fan activities.FanOutResult
	if err := fut.Get(ctx, &fan); err != nil {
		return EventResult{}, fmt.Errorf("fan out %s: %w", in.EventID, err)
	}
	res := EventResult{Matched: fan.Matched, Succeeded: len(fan.Succeeded), Skipped: fan.Skipped}
	inputs := make([]DeliveryInput, 0, len(fan.Retry))
	for _, r := range fan.Retry {
		inputs = append(inputs, DeliveryInput{Retry: r, EventID: in.EventID, EventType: in.EventType, Topic: in.Topic,
			SearchAttributes: in.SearchAttributes})
	}
	outcomes := append(fan.Succeeded, runDeliveries(ctx, inputs)...)
	for _, o := range outcomes[len(fan.Succeeded):] {
		switch o.Status {
		case delivery.StatusSucceeded:
			res.Succeeded++
		case delivery.StatusCancelled:
			res.Cancelled++
		default:
			res.Failed++
		}
	}
	if fan.Notify || fan.NotifyURL != "" {
		cb := activities.CallbackInput{ID: "cb_" + fan.ClientID, AppID: fan.AppID, URL: fan.NotifyURL, Host: fan.NotifyHost,
			EventType: "event.completed", Service: "webhooks",
			Data: map[string]any{"requestId": fan.ClientID, "eventId": fan.ClientID, "deliveries": outcomes}}
		if cb.URL == "" {
			cb.URLOfEvent = in.EventID // the URL stays in the event row
		}
		err := sendCallbackV1(ctx, cb, in.SearchAttributes)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// runDeliveries runs DeliveryWorkflows as children and waits for all of them.
func runDeliveries(ctx workflow.Context, inputs []DeliveryInput) []activities.Outcome {
	futures := make([]workflow.ChildWorkflowFuture, 0, len(inputs))
	for _, in := range inputs {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: in.WorkflowID,
			// An operator may cancel the parent; its deliveries keep their own lives.
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		})
		futures = append(futures, workflow.ExecuteChildWorkflow(cctx, DeliveryWorkflow, in))
	}
	out := make([]activities.Outcome, 0, len(inputs))
	for i, f := range futures {
		o := activities.Outcome{DeliveryID: inputs[i].DeliveryID, SubscriptionID: inputs[i].SubscriptionID, Status: delivery.StatusFailed}
		// A delivery that gave up fails its workflow, with its result in the failure.
		if dr, err := ResultOf(f.Get(ctx, nil), func(r *DeliveryResult) error { return f.Get(ctx, r) }); err == nil {
			o.Status, o.Attempts = dr.Status, dr.Attempts
		}
		out = append(out, o)
	}
	return out
}

// sendCallbackV1 is sendCallback as the legacy workflows run it: the callback's own workflow is of
// the legacy type.
func sendCallbackV1(ctx workflow.Context, in activities.CallbackInput, withAttrs bool) error {
	return sendCallbackAs(ctx, EventWorkflowV1Type, in, withAttrs)
}
