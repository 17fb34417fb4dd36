package workflows

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// An Attempt held back by maxInFlight (or a 429 pause shorter than the wake-up lead) answers
// Throttled with no wait. The workflow must not ask again at once, over and over: every ask is an
// activity and a workflow task in its history, with no timer between them, so a delivery stuck
// behind a busy endpoint grew its history toward Temporal's limit within seconds.
func TestThrottledWithoutWaitDoesNotSpin(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	const window = 10 * time.Minute
	const safety = 500 // stops a workflow that spins in no time at all
	start := env.Now()
	calls := 0
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		calls++
		if env.Now().Sub(start) >= window || calls >= safety {
			return activities.AttemptResult{Attempt: in.Offset + int(activity.GetInfo(ctx).Attempt), Status: 200}, nil
		}
		return activities.AttemptResult{Throttled: true}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Attempts: 1, Policy: policy()}, EventID: "e"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res DeliveryResult
	env.GetWorkflowResult(&res)
	elapsed := env.Now().Sub(start)
	t.Logf("%d Attempt calls in %s of workflow time", calls, elapsed)
	if res.Status != delivery.StatusSucceeded {
		t.Fatalf("result = %+v", res)
	}
	// 1 s, doubling to maxThrottlePoll (1 min): about 16 asks in 10 min, not hundreds in no time.
	if calls >= safety || elapsed < window || calls > 20 {
		t.Errorf("%d Attempt calls in %s: the workflow asks again without waiting", calls, elapsed)
	}
}

// A short pause (a 429's, under the wake-up lead) costs at most a second's wait before the send.
func TestThrottledShortPauseWaitsBriefly(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	start := env.Now()
	var sentAt time.Duration
	calls := 0
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
		calls++
		if calls == 1 {
			return activities.AttemptResult{Throttled: true}, nil
		}
		sentAt = env.Now().Sub(start)
		return activities.AttemptResult{Attempt: in.Offset + int(activity.GetInfo(ctx).Attempt), Status: 200}, nil
	}, activity.RegisterOptions{Name: "Attempt"})
	env.ExecuteWorkflow(DeliveryWorkflow, DeliveryInput{Retry: delivery.Retry{DeliveryID: "d1", WorkflowID: "delivery/e/s",
		SubscriptionID: "s", Attempts: 1, Policy: policy()}, EventID: "e"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || sentAt < 500*time.Millisecond || sentAt > 2*time.Second {
		t.Errorf("%d calls, sent after %s; want the second call about a second after the first", calls, sentAt)
	}
}
