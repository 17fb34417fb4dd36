package workflows

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// A delivery the fan-out handed over unattempted (its subscription's maxInFlight was full) waits
// for as long as the throttle holds it back: its policy's maxDuration counts from its first
// attempt, not from its workflow's start. It failed with 0 attempts ("no time left within the
// policy's 1m0s") once its throttle polls (1 s doubling) passed the policy's duration:
// TestThrottlingHoldsAcrossProcesses under load, "failed after 0 attempts".
func TestThrottledWaitDoesNotUseUpMaxDuration(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	start := env.Now()
	const held = 3 * time.Minute // longer than the policy's maxDuration
	var sentAt time.Duration
	var schedToClose time.Duration
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		if env.Now().Sub(start) < held {
			return activities.AttemptResult{Throttled: true}, nil
		}
		info := activity.GetInfo(ctx)
		sentAt, schedToClose = env.Now().Sub(start), info.ScheduleToCloseTimeout
		return activities.AttemptResult{Attempt: in.Offset + int(info.Attempt), Status: 200}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	finished := false
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.FinishInput) (activities.FinishResult, error) {
		finished = true
		return activities.FinishResult{}, nil
	}, activity.RegisterOptions{Name: "Finish"})
	env.RegisterActivityWithOptions(func(ctx context.Context, _ activities.NotifyInput) error { return nil },
		activity.RegisterOptions{Name: "NotifyFailure"})
	p := policy()
	p.MaxAttempts, p.MaxDuration, p.Timeout = 5, time.Minute, 5*time.Second
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Policy: p}, EventID: "e"})
	res, err := ResultOf(env.GetWorkflowError(), func(r *DeliveryResult) error { return env.GetWorkflowResult(r) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != delivery.StatusSucceeded || res.Attempts != 1 || finished {
		t.Fatalf("result %+v (Finish called: %v), want succeeded at its first attempt after the throttle's wait", res, finished)
	}
	if sentAt < held || schedToClose < p.MaxDuration-time.Second {
		t.Errorf("sent after %s with %s left to the attempt, want after %s with the policy's whole %s", sentAt, schedToClose, held, p.MaxDuration)
	}
}

// Once a delivery made its first attempt, throttled waits count: no attempt after maxDuration
// from the first.
func TestThrottledWaitAfterAnAttemptCountsTowardMaxDuration(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	calls := 0
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		calls++
		return activities.AttemptResult{Throttled: true}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	var finish activities.FinishInput
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.FinishInput) (activities.FinishResult, error) {
		finish = in
		return activities.FinishResult{}, nil
	}, activity.RegisterOptions{Name: "Finish"})
	env.RegisterActivityWithOptions(func(ctx context.Context, _ activities.NotifyInput) error { return nil },
		activity.RegisterOptions{Name: "NotifyFailure"})
	p := policy()
	p.MaxAttempts, p.MaxDuration, p.Timeout = 5, time.Minute, 5*time.Second
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Attempts: 1, Policy: p}, EventID: "e"})
	res, _ := ResultOf(env.GetWorkflowError(), func(r *DeliveryResult) error { return env.GetWorkflowResult(r) })
	if res.Status != delivery.StatusFailed || finish.Status != delivery.StatusFailed || calls > 10 {
		t.Errorf("result %+v after %d asks, finish %+v: want failed once the minute was up", res, calls, finish)
	}
}

// A try that the throttle holds back after an earlier try of its series made an attempt (a 500,
// then Temporal's retry found maxInFlight full) reports that attempt: the next series numbers on
// from it. It started again at the workflow's stale count, claimed the ledger's attempt 1 again
// ("being made elsewhere") and lost a try of its retry policy to it.
func TestThrottledAfterAnAttemptNumbersOn(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	made := map[int]bool{}
	var offsets []int
	throttled := false
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		n := in.Offset + int(activity.GetInfo(ctx).Attempt)
		offsets = append(offsets, in.Offset)
		switch {
		case made[n]:
			return activities.AttemptResult{}, temporal.NewApplicationError("being made elsewhere", activities.ErrTypeFailed)
		case n == 1:
			made[n] = true
			return activities.AttemptResult{}, temporal.NewApplicationErrorWithOptions("HTTP 500", activities.ErrTypeFailed,
				temporal.ApplicationErrorOptions{NextRetryDelay: time.Second, Details: []any{activities.Exhausted{Attempt: n, Status: 500}}})
		case !throttled:
			throttled = true
			return activities.AttemptResult{Throttled: true, Wait: 5 * time.Second, Attempt: n - 1}, nil
		}
		made[n] = true
		return activities.AttemptResult{Attempt: n, Status: 200}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	p := policy()
	p.MaxAttempts = 5
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Policy: p}, EventID: "e"})
	res, err := ResultOf(env.GetWorkflowError(), func(r *DeliveryResult) error { return env.GetWorkflowResult(r) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != delivery.StatusSucceeded || res.Attempts != 2 || len(offsets) != 3 || offsets[2] != 1 {
		t.Errorf("result %+v, series offsets %v: want the series after the throttle to start at attempt 2", res, offsets)
	}
}
