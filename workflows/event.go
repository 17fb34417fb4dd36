package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// EventWorkflowType is the type name EventWorkflowV2 runs under. A new name rather than a
// workflow.GetVersion branch because this workflow runs once per event: GetVersion would add a
// marker and a search-attribute upsert to every event.
const EventWorkflowType = "EventWorkflowV2" // the name of EventWorkflowV2

// SignalDeliveriesEnded tells a workflow waiting for a group of deliveries (an event's, a replay's)
// that the last of them ended. Sent by the activity that ended it.
const SignalDeliveriesEnded = "deliveries-ended"

const (
	// maxPagesPerRun bounds one run's history; the fan-out continues as new after it.
	maxPagesPerRun = 400
	// maxSkippedReported bounds the skipped subscriptions an event's result lists.
	maxSkippedReported = 100
	// groupCheckEvery is how often a waiting workflow looks at its deliveries without being
	// signalled: a safety net, the signal is the fast path.
	groupCheckEvery = 15 * time.Minute
)

// EventWorkflowV2 delivers one event to its subscribers in pages of targets: each page is one
// activity that makes the page's first attempts and starts a DeliveryWorkflow (not a child) for each
// that failed, so payloads, pending work and history stay bounded at any fan-out. When deliveries
// are retrying it waits until the last of them signals that all have ended, then reports and sends
// the completion callback if the publisher asked for one.
func EventWorkflowV2(ctx workflow.Context, in EventInput) (EventResult, error) {
	res := EventResult{}
	if in.Totals != nil {
		res = *in.Totals
	}
	var last activities.FanOutPageResult
	for pages := 0; ; pages++ {
		var p activities.FanOutPageResult
		if err := fanOutPage(ctx, in, activities.FanOutPageInput{EventID: in.EventID, After: in.After}).Get(ctx, &p); err != nil {
			return res, fmt.Errorf("fan out %s: %w", in.EventID, err)
		}
		last = p
		res.Matched += p.Matched
		res.Succeeded += p.Succeeded
		res.Retrying += p.Retrying + p.Ended
		res.SkippedCount += p.SkippedCount
		for _, s := range p.Skipped {
			if len(res.Skipped) < maxSkippedReported {
				res.Skipped = append(res.Skipped, s)
			}
		}
		if p.Next == "" {
			break
		}
		in.After = p.Next
		if pages+1 >= maxPagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in.Totals = &res
			return res, workflow.NewContinueAsNewError(ctx, EventWorkflowType, in)
		}
	}
	group := workflow.GetInfo(ctx).WorkflowExecution.ID
	// Current details are the Web UI's view of where the event stands (user metadata, no command).
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("%d subscribers matched: %d delivered at the first attempt, %d in delivery workflows of their own; %d skipped by filters",
		res.Matched, res.Succeeded, res.Retrying, res.SkippedCount))
	if res.Retrying > 0 {
		if err := waitForGroup(ctx, in.LocalFanOut, group); err != nil {
			return res, err
		}
		var counts map[string]int
		if err := groupActivity(ctx, in.LocalFanOut, a.GroupCounts, group).Get(ctx, &counts); err != nil {
			return res, fmt.Errorf("outcome of %s: %w", in.EventID, err)
		}
		res.Succeeded, res.Failed, res.Cancelled = counts[delivery.StatusSucceeded], counts[delivery.StatusFailed], counts[delivery.StatusCancelled]
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("%d subscribers matched, every delivery ended: %d succeeded, %d failed, %d cancelled; %d skipped by filters",
			res.Matched, res.Succeeded, res.Failed, res.Cancelled, res.SkippedCount))
	}
	if last.Notify || last.NotifyURL != "" {
		// The URL stays in the event row: the activity reads it (a result of an older release
		// carries it, and that is used as it is).
		cb := activities.CallbackInput{ID: "cb_" + last.ClientID, AppID: last.AppID, URL: last.NotifyURL, Host: last.NotifyHost,
			EventType: "event.completed", Service: "webhooks", OutcomesOf: group,
			Data: map[string]any{"requestId": last.ClientID, "eventId": last.ClientID}}
		if cb.URL == "" {
			cb.URLOfEvent = in.EventID
		}
		err := sendCallback(ctx, cb, in.SearchAttributes)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// fanOutPage runs one page as a local activity (inside the workflow task: no activity task round
// trip through the server) or as a regular one. Either way a page plans within its timeout.
func fanOutPage(ctx workflow.Context, ev EventInput, in activities.FanOutPageInput) workflow.Future {
	timeout := ev.PageTimeout
	if timeout <= 0 {
		timeout = activities.PageTimeout
	}
	if ev.LocalFanOut {
		// A crashed worker's workflow task times out and the next worker runs the page again; the
		// ledger makes that skip every attempt already made.
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: timeout, RetryPolicy: dbRetry, Summary: pageSummary(in),
		})
		return workflow.ExecuteLocalActivity(lctx, a.FanOutPage, in)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		// A crashed worker's page is retried elsewhere after this long without a heartbeat.
		HeartbeatTimeout: 10 * time.Second,
		RetryPolicy:      dbRetry,
		Summary:          pageSummary(in),
	})
	return workflow.ExecuteActivity(actx, a.FanOutPage, in)
}

// pageSummary is what the Web UI shows of a fan-out page.
func pageSummary(in activities.FanOutPageInput) string {
	if in.After == "" {
		return "deliver to the first page of subscribers"
	}
	return "deliver to the subscribers after " + in.After
}

// groupActivity runs a short database read about a group of deliveries.
func groupActivity(ctx workflow.Context, local bool, fn any, group string) workflow.Future {
	if local {
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second, RetryPolicy: dbRetry}), fn, group)
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, RetryPolicy: dbRetry}), fn, group)
}

// waitForGroup returns once no delivery of the group is pending. The delivery that ends last
// signals; a periodic look covers a signal lost to a crash.
func waitForGroup(ctx workflow.Context, local bool, group string) error {
	ended := workflow.GetSignalChannel(ctx, SignalDeliveriesEnded)
	for {
		var pending int
		if err := groupActivity(ctx, local, a.PendingInGroup, group).Get(ctx, &pending); err != nil {
			return fmt.Errorf("deliveries of %s: %w", group, err)
		}
		if pending == 0 {
			return nil
		}
		tctx, stopTimer := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ended, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		timer := workflow.NewTimerWithOptions(tctx, groupCheckEvery, workflow.TimerOptions{
			Summary: fmt.Sprintf("%d deliveries pending: look again in %s unless the last one signals first", pending, groupCheckEvery)})
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.Select(ctx)
		stopTimer()
		for ended.ReceiveAsync(nil) {
		}
	}
}

// sendCallback stores a one-off callback and starts its own event workflow, which signs, retries,
// records and reports it like any delivery. It does not wait for the callback to be delivered.
func sendCallback(ctx workflow.Context, in activities.CallbackInput, withAttrs bool) error {
	return sendCallbackAs(ctx, EventWorkflowType, in, withAttrs)
}

// callbackSummary is what the Web UI shows of a callback's workflow: its type and host.
func callbackSummary(in activities.CallbackInput) string {
	if in.URL != "" {
		return delivery.CallbackSummary(in.EventType, in.URL)
	}
	return delivery.CallbackHostSummary(in.EventType, in.Host)
}

// sendCallbackAs is sendCallback with the callback's workflow of the given type.
func sendCallbackAs(ctx workflow.Context, workflowType string, in activities.CallbackInput, withAttrs bool) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: dbRetry})
	var id string
	if err := workflow.ExecuteActivity(actx, a.CreateCallback, in).Get(ctx, &id); err != nil {
		return fmt.Errorf("callback %s: %w", in.ID, err)
	}
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:        delivery.EventWorkflowID(id),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     callbackSummary(in),
	}
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), workflowType,
		EventInput{EventID: id, EventType: in.EventType, Topic: in.Service, SearchAttributes: withAttrs, LocalFanOut: true})
	var started workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &started); err != nil {
		var already *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &already) { // the reconciler may have started it first
			return fmt.Errorf("start callback %s: %w", id, err)
		}
	}
	return nil
}
