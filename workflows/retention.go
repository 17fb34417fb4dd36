package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
)

// RetentionScheduleID names the Schedule that runs RetentionWorkflow for a task queue.
func RetentionScheduleID(taskQueue string) string { return "hookd-retention/" + taskQueue }

// RetentionResult counts the rows a retention run deleted (as db.Expired: the activity's result
// decodes into it).
type RetentionResult struct {
	Events, Deliveries, Attempts int
}

// RetentionWorkflow deletes events, deliveries and attempts older than HOOKD_RETENTION. A Temporal
// Schedule starts it (visible and pausable in the Web UI); the deleting happens in one activity
// that works in small batches and heartbeats, so it never holds long locks.
func RetentionWorkflow(ctx workflow.Context) (RetentionResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: time.Minute, MaximumAttempts: 5},
	})
	var a *activities.Activities
	var n RetentionResult
	err := workflow.ExecuteActivity(ctx, a.DeleteExpired).Get(ctx, &n)
	return n, err
}
