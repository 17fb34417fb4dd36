package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

func policy() delivery.Policy {
	return delivery.Policy{InitialInterval: time.Minute, BackoffCoefficient: 2, MaxInterval: time.Hour, MaxAttempts: 10, MaxDuration: 24 * time.Hour, Timeout: 20 * time.Second}
}

// A retry signal during the first backoff makes the next attempt happen at once.
func TestRetrySignalDuringBackoff(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var acts *activities.Activities
	var attemptAt time.Duration
	start := env.Now()
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		attemptAt = env.Now().Sub(start)
		return activities.AttemptResult{Attempt: in.Offset + int(activity.GetInfo(ctx).Attempt), Status: 200}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	_ = acts
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalRetry, SignalPayload{}) }, 5*time.Second)
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Attempts: 1, Delay: time.Minute, Policy: policy()}, EventID: "e"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res DeliveryResult
	env.GetWorkflowResult(&res)
	if res.Status != delivery.StatusSucceeded || res.Attempts != 2 {
		t.Errorf("result = %+v", res)
	}
	if attemptAt > 10*time.Second {
		t.Errorf("attempt at %s, want right after the signal at 5s", attemptAt)
	}
}

// A cancel signal during backoff closes the delivery as cancelled without another attempt.
func TestCancelSignalDuringBackoff(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	attempts := 0
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		attempts++
		return activities.AttemptResult{}, temporal.NewApplicationError("HTTP 500", activities.ErrTypeFailed)
	}, activity.RegisterOptions{Name: "Attempt"})
	var finished activities.FinishInput
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.FinishInput) (activities.FinishResult, error) {
		finished = in
		return activities.FinishResult{}, nil
	}, activity.RegisterOptions{Name: "Finish"})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCancel, SignalPayload{Reason: "receiver retired"}) }, 5*time.Second)
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", Attempts: 1, Delay: time.Minute, Policy: policy()}, EventID: "e"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res DeliveryResult
	env.GetWorkflowResult(&res)
	if res.Status != delivery.StatusCancelled || attempts != 0 || finished.Status != delivery.StatusCancelled || finished.Reason != "cancelled: receiver retired" {
		t.Errorf("result %+v, %d attempts, finish %+v", res, attempts, finished)
	}
}

// The last failing attempt closes the delivery itself: the workflow only sends the e-mails, without
// the LastAttempt and Finish activities.
func TestExhaustedAttemptClosesTheDelivery(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var got activities.AttemptInput
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		got = in
		return activities.AttemptResult{}, temporal.NewNonRetryableApplicationError("HTTP 500", activities.ErrTypeExhausted, nil,
			activities.Exhausted{Attempt: 2, Status: 500, Disabled: true})
	}, activity.RegisterOptions{Name: "Attempt"})
	var calls []string
	for _, name := range []string{"LastAttempt", "Finish"} {
		name := name
		env.RegisterActivityWithOptions(func(ctx context.Context, _ any) error { calls = append(calls, name); return nil },
			activity.RegisterOptions{Name: name})
	}
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.NotifyInput) error {
		calls = append(calls, "NotifyFailure")
		return nil
	}, activity.RegisterOptions{Name: "NotifyFailure"})
	env.RegisterActivityWithOptions(func(ctx context.Context, sub string) error {
		calls = append(calls, "NotifyDisabled")
		return nil
	}, activity.RegisterOptions{Name: "NotifyDisabled"})
	res := runLastAttempt(t, env)
	if res.Status != delivery.StatusFailed || res.Attempts != 2 || !got.FinishWhenExhausted {
		t.Errorf("result %+v, attempt input %+v", res, got)
	}
	// The workflow fails (the Web UI lists it as Failed), not retryable, and says why.
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != ErrTypeGaveUp || !appErr.NonRetryable() ||
		appErr.Message() != "gave up after 2 attempts; the last: HTTP 500" || res.Reason != appErr.Message() {
		t.Errorf("workflow error %v, result reason %q", err, res.Reason)
	}
	if strings.Join(calls, ",") != "NotifyFailure,NotifyDisabled" {
		t.Errorf("activities after the attempt: %v", calls)
	}
}

// A try that timed out or failed before making its attempt does not cost the delivery one: with
// one attempt left and that try lost, a new series makes the attempt.
func TestLostTryDoesNotCostAnAttempt(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	tries := 0
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		tries++
		if tries == 1 {
			return activities.AttemptResult{}, errors.New("attempt d1: database did not answer")
		}
		return activities.AttemptResult{Attempt: 2, Status: 200}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	env.RegisterActivityWithOptions(func(ctx context.Context, _ string) (int, error) { return 1, nil }, activity.RegisterOptions{Name: "LastAttempt"})
	finished := ""
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.FinishInput) (activities.FinishResult, error) {
		finished = in.Status
		return activities.FinishResult{}, nil
	}, activity.RegisterOptions{Name: "Finish"})
	res := runLastAttempt(t, env)
	if res.Status != delivery.StatusSucceeded || res.Attempts != 2 || tries != 2 || finished != "" {
		t.Errorf("result %+v after %d tries (finished %q)", res, tries, finished)
	}
}

// runLastAttempt runs the DeliveryWorkflow of a delivery whose first attempt failed, with one
// attempt left (MaxAttempts 2), and returns its result.
func runLastAttempt(t *testing.T, env *testsuite.TestWorkflowEnvironment) DeliveryResult {
	t.Helper()
	p := policy()
	p.MaxAttempts = 2
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", SubscriptionID: "s", Attempts: 1,
		Delay: time.Second, Policy: p}, EventID: "e"})
	// A delivery that gave up fails its workflow with its result as the failure's details.
	res, err := ResultOf(env.GetWorkflowError(), func(r *DeliveryResult) error { return env.GetWorkflowResult(r) })
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A Throttled attempt costs no attempt: the workflow waits as told and tries again with the
// reserved slot, and the delivery's attempt count stays that of the POSTs made.
func TestThrottledAttemptWaitsWithoutCountingIt(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	slot := &delivery.Reservation{At: time.Unix(1000, 0), Lease: "l1"}
	var inputs []activities.AttemptInput
	var calledAt []time.Time
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		inputs = append(inputs, in)
		calledAt = append(calledAt, env.Now())
		if len(inputs) == 1 {
			return activities.AttemptResult{Throttled: true, Wait: 30 * time.Second, Reservation: slot}, nil
		}
		return activities.AttemptResult{Attempt: in.Offset + 1, Status: 200}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Policy: policy()}, EventID: "e"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res DeliveryResult
	env.GetWorkflowResult(&res)
	if res.Status != delivery.StatusSucceeded || res.Attempts != 1 {
		t.Errorf("result %+v, want succeeded after 1 attempt", res)
	}
	if len(inputs) != 2 || !inputs[0].ThrottleAware || inputs[0].Reservation != nil || inputs[1].Offset != 0 ||
		inputs[1].Reservation == nil || inputs[1].Reservation.Lease != "l1" {
		t.Fatalf("attempt inputs %+v", inputs)
	}
	if gap := calledAt[1].Sub(calledAt[0]); gap < 30*time.Second {
		t.Errorf("second try %s after the first, want the 30 s the throttle said", gap)
	}
}

// A delivery that ended before its workflow ran (the Web UI's Reset re-runs the workflow of a
// delivery that failed) is not attempted again: the Attempt activity finds it ended, and the
// workflow fails again saying so and how to send it again, with no Finish and no e-mail.
func TestEndedDeliveryIsNotAttemptedAgain(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		return activities.AttemptResult{}, temporal.NewNonRetryableApplicationError("delivery already failed", activities.ErrTypeFinished, nil, delivery.StatusFailed)
	}, activity.RegisterOptions{Name: "Attempt"})
	env.RegisterActivityWithOptions(func(ctx context.Context, _ string) (int, error) { return 4, nil }, activity.RegisterOptions{Name: "LastAttempt"})
	var calls []string
	for _, name := range []string{"Finish", "NotifyFailure", "NotifyDisabled"} {
		name := name
		env.RegisterActivityWithOptions(func(ctx context.Context, _ any) error { calls = append(calls, name); return nil },
			activity.RegisterOptions{Name: name})
	}
	p := policy()
	p.MaxAttempts = 4
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", SubscriptionID: "s", Attempts: 1, Policy: p}, EventID: "e"})
	res, err := ResultOf(env.GetWorkflowError(), func(r *DeliveryResult) error { return env.GetWorkflowResult(r) })
	if err != nil {
		t.Fatal(err)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(env.GetWorkflowError(), &appErr) || appErr.Type() != ErrTypeGaveUp ||
		!strings.Contains(appErr.Message(), "already ended failed") || !strings.Contains(appErr.Message(), "/v1/deliveries/d1/replay") {
		t.Errorf("workflow error %v", env.GetWorkflowError())
	}
	if res.Status != delivery.StatusFailed || res.Attempts != 4 || len(calls) != 0 {
		t.Errorf("result %+v, activities %v", res, calls)
	}
}
