package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// The event workflow walks the pages, then waits for its retrying deliveries until the last one's
// signal, and reports the final counts.
func TestEventWorkflowPagesAndWaits(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var pages []string
	env.OnActivity(a.FanOutPage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FanOutPageInput) (activities.FanOutPageResult, error) {
			pages = append(pages, in.After)
			if in.After == "" {
				return activities.FanOutPageResult{Next: "sub_500", Matched: 500, Succeeded: 498, Retrying: 2}, nil
			}
			return activities.FanOutPageResult{Matched: 3, Succeeded: 3, SkippedCount: 1,
				Skipped: []activities.Skipped{{SubscriptionID: "sub_900", Reason: "filter did not match"}}}, nil
		})
	pending := 2
	checks := 0
	env.OnActivity(a.PendingInGroup, mock.Anything, mock.Anything).Return(func(_ context.Context, group string) (int, error) {
		checks++
		return pending, nil
	})
	env.OnActivity(a.GroupCounts, mock.Anything, mock.Anything).Return(
		map[string]int{delivery.StatusSucceeded: 502, delivery.StatusFailed: 1}, nil)
	start := env.Now()
	var signalledAt time.Duration
	env.RegisterDelayedCallback(func() {
		pending = 0
		signalledAt = env.Now().Sub(start)
		env.SignalWorkflow(SignalDeliveriesEnded, nil)
	}, time.Minute)
	env.ExecuteWorkflow(EventWorkflowV2, EventInput{EventID: "app:1/e1", LocalFanOut: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res EventResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(pages) != 2 || pages[1] != "sub_500" {
		t.Errorf("pages after %q", pages)
	}
	if res.Matched != 503 || res.Succeeded != 502 || res.Failed != 1 || res.Retrying != 2 || res.SkippedCount != 1 {
		t.Errorf("result %+v", res)
	}
	if checks != 2 || env.Now().Sub(start) > signalledAt+time.Second {
		t.Errorf("%d checks; ended %s after start, signalled at %s", checks, env.Now().Sub(start), signalledAt)
	}
}

// A fan-out longer than one run's page budget continues as new from where it stopped.
func TestEventWorkflowContinuesAsNew(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.OnActivity(a.FanOutPage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FanOutPageInput) (activities.FanOutPageResult, error) {
			return activities.FanOutPageResult{Next: in.After + "x", Matched: 1, Succeeded: 1}, nil
		})
	env.ExecuteWorkflow(EventWorkflowV2, EventInput{EventID: "app:1/e1", LocalFanOut: true})
	err := env.GetWorkflowError()
	if err == nil {
		t.Fatal("no continue-as-new")
	}
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("error %v, want continue-as-new", err)
	}
	var next EventInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.After != strings.Repeat("x", maxPagesPerRun) || next.Totals == nil || next.Totals.Matched != maxPagesPerRun {
		t.Errorf("continued with after %d x, totals %+v", len(next.After), next.Totals)
	}
}
