package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/workflows"
)

// EnsureRetentionSchedule creates the Schedule that runs RetentionWorkflow on the task queue every
// interval, or brings an existing one to that interval. Every worker calls it at startup; the
// first creates it, the others find it. A paused schedule stays paused.
func EnsureRetentionSchedule(ctx context.Context, c client.Client, taskQueue string, every time.Duration) error {
	id := workflows.RetentionScheduleID(taskQueue)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: spec,
		Action: &client.ScheduleWorkflowAction{
			ID:        "retention/" + taskQueue,
			Workflow:  workflows.RetentionWorkflow,
			TaskQueue: taskQueue,
		},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "hookd: deletes events, deliveries and attempts older than HOOKD_RETENTION",
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				s := in.Description.Schedule
				if len(s.Spec.Intervals) == 1 && s.Spec.Intervals[0].Every == every {
					return nil, temporal.ErrSkipScheduleUpdate
				}
				s.Spec = &spec
				return &client.ScheduleUpdate{Schedule: &s}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("retention schedule %s: %w", id, err)
	}
	return nil
}
