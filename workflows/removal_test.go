package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
)

// The removal follow-up cancels first, then tells the contacts, and retries a failed e-mail step
// until it goes through.
func TestRemovedEventWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var order []string
	env.OnActivity(a.CancelRemovedDeliveries, mock.Anything, int64(42)).Return(func(_ context.Context, _ int64) (int, error) {
		order = append(order, "cancel")
		return 3, nil
	})
	tries := 0
	env.OnActivity(a.NotifyRemoval, mock.Anything, int64(42)).Return(func(_ context.Context, _ int64) (int, error) {
		tries++
		order = append(order, "notify")
		if tries == 1 {
			return 0, errors.New("smtp: connection refused")
		}
		return 2, nil
	})
	env.ExecuteWorkflow(RemovedEventWorkflow, RemovedEventInput{RegisteredEventID: 42})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res RemovedEventResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res != (RemovedEventResult{Cancelled: 3, Notified: 2}) || len(order) != 3 || order[0] != "cancel" {
		t.Errorf("result %+v, steps %v", res, order)
	}
}
