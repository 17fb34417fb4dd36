package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
)

func recoverEnv(t *testing.T, page func(n int) activities.RecoverPageResult) (*testsuite.TestWorkflowEnvironment, *int, *string) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	pages, finished := 0, ""
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.RecoverInput) (activities.RecoverPageResult, error) {
		pages++
		return page(pages), nil
	}, activity.RegisterOptions{Name: "RecoverPage"})
	env.RegisterActivityWithOptions(func(ctx context.Context, id, status string) error {
		finished = status
		return nil
	}, activity.RegisterOptions{Name: "FinishOperation"})
	return env, &pages, &finished
}

func recoverInput() RecoverState {
	return RecoverState{RecoverInput: activities.RecoverInput{OperationID: "op_1", AppID: "app:1", Group: "recover/op_1",
		Window: db.RecoverWindow{Since: time.Unix(0, 0), Until: time.Unix(3600, 0)}}}
}

// Pages run until one says the window is done; the operation is then recorded as completed.
func TestRecoverRunsPagesUntilDone(t *testing.T) {
	env, pages, finished := recoverEnv(t, func(n int) activities.RecoverPageResult {
		if n == 3 {
			return activities.RecoverPageResult{Replayed: 7, Done: true}
		}
		return activities.RecoverPageResult{Replayed: activities.RecoverPageSize}
	})
	env.ExecuteWorkflow(RecoverWorkflow, recoverInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res RecoverResult
	env.GetWorkflowResult(&res)
	if *pages != 3 || res.Status != delivery.OperationCompleted || res.Replayed != 2*activities.RecoverPageSize+7 || *finished != delivery.OperationCompleted {
		t.Errorf("pages %d, result %+v, finished %q", *pages, res, *finished)
	}
}

// A cancel signal stops the recover before its next page, recorded as cancelled.
func TestRecoverCancelledBetweenPages(t *testing.T) {
	env, pages, finished := recoverEnv(t, func(int) activities.RecoverPageResult {
		return activities.RecoverPageResult{Replayed: activities.RecoverPageSize}
	})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCancel, SignalPayload{}) }, 0)
	env.ExecuteWorkflow(RecoverWorkflow, recoverInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res RecoverResult
	env.GetWorkflowResult(&res)
	if res.Status != delivery.OperationCancelled || *finished != delivery.OperationCancelled || *pages > 1 {
		t.Errorf("pages %d, result %+v, finished %q", *pages, res, *finished)
	}
}

// However large the window, one run's history stays bounded: it continues as new.
func TestRecoverContinuesAsNew(t *testing.T) {
	env, pages, _ := recoverEnv(t, func(int) activities.RecoverPageResult {
		return activities.RecoverPageResult{Replayed: activities.RecoverPageSize}
	})
	env.ExecuteWorkflow(RecoverWorkflow, recoverInput())
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("error %v, want continue-as-new", err)
	}
	if *pages != recoverPagesPerRun {
		t.Errorf("%d pages in one run, want %d", *pages, recoverPagesPerRun)
	}
}
