// Package engine is hookd's one gateway to Temporal: every start, signal and describe of a hookd
// workflow goes through a Gateway, which builds the start options from the configuration and
// decides once what an engine's "already started" and "not found" mean:
//
//   - a start of a workflow that exists already is not an error (every hookd workflow id names
//     one piece of work: a second start is a retry of the first);
//   - a signal to a workflow that is not running returns ErrNotRunning, for the caller to decide
//     whether that matters (a cancel of a delivery still on its first attempt does; a wake-up of
//     a workflow that has ended does not);
//   - Status of a workflow that does not exist is WORKFLOW_EXECUTION_STATUS_UNSPECIFIED.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/tracing"
	"github.com/hookd/hookd/workflows"
)

// Client is the part of the Temporal client hookd uses.
type Client interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// ErrNotRunning is a signal's answer when its workflow has ended or never started.
var ErrNotRunning = errors.New("the workflow is not running")

// startConcurrency is how many workflow starts one StartDeliveries call has in flight.
const startConcurrency = 16

// Gateway starts, signals and describes hookd's workflows. It is the activities' RetryStarter,
// EventStarter and ReplayStarter.
type Gateway struct {
	client Client
	cfg    config.Config
	// starting counts event starts in flight, to tell a burst from a steady stream.
	starting atomic.Int64
}

// New is a Gateway to c, with start options from cfg (task queue, search attributes, fan-out
// mode and page timeout, eager start).
func New(c Client, cfg config.Config) *Gateway { return &Gateway{client: c, cfg: cfg} }

var (
	_ activities.RetryStarter  = (*Gateway)(nil)
	_ activities.EventStarter  = (*Gateway)(nil)
	_ activities.ReplayStarter = (*Gateway)(nil)
)

// start runs ExecuteWorkflow; an existing workflow of the id is not an error.
func (g *Gateway) start(ctx context.Context, opts client.StartWorkflowOptions, wf any, arg any) error {
	_, err := g.client.ExecuteWorkflow(ctx, opts, wf, arg)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return nil
}

// StartEvent starts a stored event's workflow. Eager start hands the first workflow task straight
// to a worker in this process (if there is one): the cheapest path for the engine. A caller that
// waits for the start starts eagerly only while few starts are in flight, so that in a burst the
// task queue absorbs the load instead of the answers.
func (g *Gateway) StartEvent(ctx context.Context, ev db.Event) error {
	return g.startEvent(ctx, ev, false)
}

// StartEventInBackground is StartEvent for a caller nobody waits for (the outbox, the
// reconciler): it always asks for an eager start (the SDK falls back when the worker has no free
// slot).
func (g *Gateway) StartEventInBackground(ctx context.Context, ev db.Event) error {
	return g.startEvent(ctx, ev, true)
}

// storedEvent is what an event's workflow start needs of its row.
func storedEvent(ev db.Event) workflows.StoredEvent {
	return workflows.StoredEvent{ID: ev.ID, ClientID: ev.ClientID, WorkflowID: ev.WorkflowID, AppID: ev.AppID, Type: ev.Type,
		Topic: ev.Topic, Callback: ev.Kind == db.KindCallback, TargetURL: ev.TargetURL.String, ReceivedAt: ev.ReceivedAt,
		Size: len(ev.Payload)}
}

func (g *Gateway) startEvent(ctx context.Context, ev db.Event, background bool) error {
	inFlight := g.starting.Add(1)
	defer g.starting.Add(-1)
	opts, in := workflows.EventStart(storedEvent(ev), g.cfg.TaskQueue, workflows.EventInput{SearchAttributes: g.cfg.SearchAttributes,
		LocalFanOut: g.cfg.LocalFanOut, PageTimeout: g.cfg.FanOutPageTimeout})
	opts.EnableEagerStart = g.cfg.EagerStart && (background || inFlight <= int64(g.cfg.EagerMaxStarting))
	if ev.TraceParent.Valid && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = tracing.ContextWithTraceParent(ctx, ev.TraceParent.String) // started by the outbox or the reconciler
	}
	return g.start(ctx, opts, workflows.EventWorkflowType, in)
}

// StartDelivery starts a delivery's own DeliveryWorkflow (a retry, a replay, a restart).
func (g *Gateway) StartDelivery(ctx context.Context, in workflows.DeliveryInput) error {
	in.SearchAttributes = g.cfg.SearchAttributes
	opts := workflows.StartOptions(&in, g.cfg.TaskQueue) // before in is passed: it changes in
	return g.start(ctx, opts, workflows.DeliveryWorkflow, in)
}

// StartDeliveries starts DeliveryWorkflows, startConcurrency at a time.
func (g *Gateway) StartDeliveries(ctx context.Context, ins []workflows.DeliveryInput) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(startConcurrency)
	for _, in := range ins {
		eg.Go(func() error { return g.StartDelivery(ectx, in) })
	}
	return eg.Wait()
}

// StartRetries starts the DeliveryWorkflow of each retry of an event's deliveries.
func (g *Gateway) StartRetries(ctx context.Context, ev db.Event, rs []delivery.Retry) error {
	ins := make([]workflows.DeliveryInput, len(rs))
	for i, r := range rs {
		ins[i] = workflows.DeliveryInput{Retry: r, EventID: ev.ID, EventType: ev.Type, Topic: ev.Topic}
	}
	return g.StartDeliveries(ctx, ins)
}

// StartReplays starts the DeliveryWorkflows of replays.
func (g *Gateway) StartReplays(ctx context.Context, rs []delivery.ReplayStart) error {
	ins := make([]workflows.DeliveryInput, len(rs))
	for i, r := range rs {
		ins[i] = ReplayInput(r)
	}
	return g.StartDeliveries(ctx, ins)
}

// ReplayInput is the DeliveryWorkflow input of a replay.
func ReplayInput(r delivery.ReplayStart) workflows.DeliveryInput {
	return workflows.DeliveryInput{Retry: r.Retry, EventID: r.EventID, EventType: r.EventType, Topic: r.Topic, Replay: r.Replay}
}

// StartReplayGroup starts the ReplayWorkflow that runs a whole-event replay's deliveries and
// makes its callback once all have ended.
func (g *Gateway) StartReplayGroup(ctx context.Context, workflowID string, in workflows.ReplayInput) error {
	in.SearchAttributes = g.cfg.SearchAttributes
	for i := range in.Deliveries {
		in.Deliveries[i].SearchAttributes = g.cfg.SearchAttributes
	}
	return g.start(ctx, client.StartWorkflowOptions{ID: workflowID, TaskQueue: g.cfg.TaskQueue}, workflows.ReplayWorkflow, in)
}

// StartRecover starts the RecoverWorkflow of op, a recover operation of window w.
func (g *Gateway) StartRecover(ctx context.Context, op db.Operation, w db.RecoverWindow) error {
	in := workflows.RecoverState{RecoverInput: activities.RecoverInput{OperationID: op.ID, AppID: op.AppID, Window: w,
		Group: op.WorkflowID}, SearchAttributes: g.cfg.SearchAttributes}
	return g.start(ctx, workflows.RecoverStart(in, g.cfg.TaskQueue), workflows.RecoverWorkflow, in)
}

// StartRemoval starts the follow-up of a removed registered event: its subscriptions' pending
// deliveries cancelled, their contacts told.
func (g *Gateway) StartRemoval(ctx context.Context, registeredEventID int64) error {
	return g.start(ctx, client.StartWorkflowOptions{ID: workflows.RemovedEventWorkflowID(registeredEventID), TaskQueue: g.cfg.TaskQueue},
		workflows.RemovedEventWorkflow, workflows.RemovedEventInput{RegisteredEventID: registeredEventID})
}

// Signal sends a signal; ErrNotRunning when the workflow has ended or never started.
func (g *Gateway) Signal(ctx context.Context, workflowID, name string, arg any) error {
	err := g.client.SignalWorkflow(ctx, workflowID, "", name, arg)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ErrNotRunning
	}
	if err != nil {
		return fmt.Errorf("signal %s to %s: %w", name, workflowID, err)
	}
	return nil
}

// SignalDelivery asks a delivery's workflow to retry now (workflows.SignalRetry) or to end as
// cancelled (workflows.SignalCancel), with the reason; ErrNotRunning as Signal.
func (g *Gateway) SignalDelivery(ctx context.Context, workflowID, signal, reason string) error {
	return g.Signal(ctx, workflowID, signal, workflows.SignalPayload{Reason: reason})
}

// CancelDelivery ends a delivery's workflow as cancelled with the reason. A workflow that is gone
// (the delivery ended, or its first attempt is still running) needs no signal.
func (g *Gateway) CancelDelivery(ctx context.Context, workflowID, reason string) error {
	if err := g.SignalDelivery(ctx, workflowID, workflows.SignalCancel, reason); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}

// CancelOperation asks a running operation's workflow to stop after its current page;
// ErrNotRunning as Signal.
func (g *Gateway) CancelOperation(ctx context.Context, workflowID, reason string) error {
	return g.Signal(ctx, workflowID, workflows.SignalCancel, workflows.SignalPayload{Reason: reason})
}

// GroupEnded tells the workflow waiting for a group that its last delivery ended. A workflow that
// is gone (it closed, or never waited) needs no signal.
func (g *Gateway) GroupEnded(ctx context.Context, workflowID string) error {
	if err := g.Signal(ctx, workflowID, workflows.SignalDeliveriesEnded, nil); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}

// Status is a workflow's status, WORKFLOW_EXECUTION_STATUS_UNSPECIFIED when there is no such
// workflow.
func (g *Gateway) Status(ctx context.Context, workflowID string) (enumspb.WorkflowExecutionStatus, error) {
	resp, err := g.client.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED, nil
	}
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	return resp.GetWorkflowExecutionInfo().GetStatus(), nil
}

// CheckHealth asks the engine whether it serves.
func (g *Gateway) CheckHealth(ctx context.Context) error {
	_, err := g.client.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// Unavailable tells whether err says the engine could not be reached or did not answer in time
// (rather than refusing the request): the caller may try again later.
func Unavailable(err error) bool {
	var (
		u  *serviceerror.Unavailable
		de *serviceerror.DeadlineExceeded
		rx *serviceerror.ResourceExhausted
	)
	return errors.As(err, &u) || errors.As(err, &de) || errors.As(err, &rx) || errors.Is(err, context.DeadlineExceeded)
}
