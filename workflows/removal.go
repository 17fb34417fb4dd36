package workflows

import (
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
)

// RemovedEventInput names a registered event its publisher removed; the subscriptions to it are
// already disabled with the reason.
type RemovedEventInput struct {
	RegisteredEventID int64
}

// RemovedEventResult is how many pending deliveries were cancelled and contacts told.
type RemovedEventResult struct {
	Cancelled int
	Notified  int
}

// RemovedEventWorkflowID is one per removed event, so the API and the reconciler never run two.
func RemovedEventWorkflowID(registeredEventID int64) string {
	return "registry-removal/" + strconv.FormatInt(registeredEventID, 10)
}

// RemovedEventWorkflow ends the pending deliveries to the subscriptions of a removed registered
// event as cancelled with the reason, then e-mails each subscriber's contact once. It does its work
// in two retried activities, so a failed SMTP server or a worker crash only delays it.
func RemovedEventWorkflow(ctx workflow.Context, in RemovedEventInput) (RemovedEventResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute},
	})
	var a *activities.Activities
	var res RemovedEventResult
	if err := workflow.ExecuteActivity(ctx, a.CancelRemovedDeliveries, in.RegisteredEventID).Get(ctx, &res.Cancelled); err != nil {
		return res, err
	}
	if err := workflow.ExecuteActivity(ctx, a.NotifyRemoval, in.RegisteredEventID).Get(ctx, &res.Notified); err != nil {
		return res, err
	}
	return res, nil
}
