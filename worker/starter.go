package worker

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/workflows"
)

// startConcurrency is how many workflow starts one activity has in flight.
const startConcurrency = 16

// Starter starts DeliveryWorkflows as workflows of their own, not children of the event's workflow
// (whose pending children Temporal caps at 2,000), and wakes workflows waiting for a group of
// deliveries. It is activities.RetryStarter, and the StartDeliveries activity of ReplayWorkflow.
type Starter struct {
	Client           client.Client
	TaskQueue        string
	SearchAttributes bool
}

// StartRetries starts the DeliveryWorkflow of each retry of an event's deliveries.
func (s *Starter) StartRetries(ctx context.Context, ev db.Event, rs []delivery.Retry) error {
	ins := make([]workflows.DeliveryInput, len(rs))
	for i, r := range rs {
		ins[i] = workflows.DeliveryInput{Retry: r, EventID: ev.ID, EventType: ev.Type, Topic: ev.Topic, SearchAttributes: s.SearchAttributes}
	}
	return s.StartDeliveries(ctx, ins)
}

// StartDeliveries starts DeliveryWorkflows; one that exists already (a retried activity) is left
// as it is.
func (s *Starter) StartDeliveries(ctx context.Context, ins []workflows.DeliveryInput) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(startConcurrency)
	for _, in := range ins {
		g.Go(func() error {
			opts := workflows.StartOptions(&in, s.TaskQueue) // before in is passed: it changes in
			_, err := s.Client.ExecuteWorkflow(gctx, opts, workflows.DeliveryWorkflow, in)
			var started *serviceerror.WorkflowExecutionAlreadyStarted
			if err != nil && !errors.As(err, &started) {
				return fmt.Errorf("start %s: %w", in.WorkflowID, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// StartReplays starts the DeliveryWorkflows of replays.
func (s *Starter) StartReplays(ctx context.Context, rs []activities.ReplayStart) error {
	ins := make([]workflows.DeliveryInput, len(rs))
	for i, r := range rs {
		ins[i] = workflows.DeliveryInput{Retry: r.Retry, EventID: r.EventID, EventType: r.EventType, Topic: r.Topic,
			SearchAttributes: s.SearchAttributes, Replay: r.Replay}
	}
	return s.StartDeliveries(ctx, ins)
}

// StartEvent starts a stored event's workflow (an operational webhook's); one that exists already
// is left as it is.
func (s *Starter) StartEvent(ctx context.Context, ev db.Event) error {
	opts, in := workflows.EventStart(ev, s.TaskQueue, workflows.EventInput{SearchAttributes: s.SearchAttributes, LocalFanOut: true})
	_, err := s.Client.ExecuteWorkflow(ctx, opts, workflows.EventWorkflowType, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return nil
}

// GroupEnded signals the workflow waiting for a group that its last delivery ended. A workflow
// that is gone (it closed, or never waited) needs no signal.
func (s *Starter) GroupEnded(ctx context.Context, workflowID string) error {
	err := s.Client.SignalWorkflow(ctx, workflowID, "", workflows.SignalDeliveriesEnded, nil)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("signal %s: %w", workflowID, err)
	}
	return nil
}

// CancelDelivery signals a delivery's workflow to end it as cancelled with the reason. A workflow
// that is gone (the delivery ended, or its first attempt is still running) needs no signal.
func (s *Starter) CancelDelivery(ctx context.Context, workflowID, reason string) error {
	err := s.Client.SignalWorkflow(ctx, workflowID, "", workflows.SignalCancel, workflows.SignalPayload{Reason: reason})
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("signal %s: %w", workflowID, err)
	}
	return nil
}
