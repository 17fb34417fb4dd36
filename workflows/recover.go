package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// recoverPagesPerRun bounds one run's history (about 6 events a page): the workflow continues as
// new after that many pages, however many failed deliveries the window holds.
const recoverPagesPerRun = 500

// RecoverState is a recover's progress, carried across continue-as-new.
type RecoverState struct {
	activities.RecoverInput
	SearchAttributes bool
	Replayed         int // replays started so far
	Pages            int
}

// RecoverResult is how a recover ended.
type RecoverResult struct {
	Status   string // delivery.OperationCompleted or delivery.OperationCancelled
	Replayed int
}

// RecoverWorkflowID is the workflow of a recover operation.
func RecoverWorkflowID(operationID string) string { return "recover/" + operationID }

// RecoverStart is how a recover's workflow starts: one workflow per operation id (a second start
// of the same window is rejected), its filters as search attributes, its window in words.
func RecoverStart(in RecoverState, queue string) client.StartWorkflowOptions {
	opts := client.StartWorkflowOptions{ID: in.Group, TaskQueue: queue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE}
	if in.SearchAttributes {
		attrs := []temporal.SearchAttributeUpdate{AttrStatus.ValueSet("recovering")}
		if in.Window.SubscriptionID != "" {
			attrs = append(attrs, AttrSubscriptionID.ValueSet(in.Window.SubscriptionID))
		}
		if in.Window.EventType != "" {
			attrs = append(attrs, AttrEventType.ValueSet(in.Window.EventType))
		}
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(attrs...)
	}
	w := in.Window
	opts.StaticSummary = fmt.Sprintf("recover failed deliveries of %s created %s – %s", in.AppID,
		w.Since.UTC().Format(time.RFC3339), w.Until.UTC().Format(time.RFC3339))
	opts.StaticDetails = fmt.Sprintf("operation `%s`: `GET /v1/operations/%s`", in.OperationID, in.OperationID)
	if w.SubscriptionID != "" || w.EventType != "" {
		opts.StaticDetails += fmt.Sprintf("\n\nsubscription `%s`, event type `%s`", w.SubscriptionID, w.EventType)
	}
	return opts
}

// RecoverWorkflow replays, page by page, every failed delivery of an app's window that no recover
// replayed before (Svix's recover, Convoy's batch retry). A cancel signal stops it between pages;
// replays already started go on. Progress is in its current details and at GET
// /v1/operations/{id}; its HookdDeliveryStatus search attribute says recovering, completed or
// cancelled.
func RecoverWorkflow(ctx workflow.Context, in RecoverState) (RecoverResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute, RetryPolicy: dbRetry,
		Summary: "replay the next failed deliveries of the window"})
	cancel := workflow.GetSignalChannel(ctx, SignalCancel)
	status := delivery.OperationCompleted
	for run := 0; ; run++ {
		if cancel.ReceiveAsync(nil) {
			status = delivery.OperationCancelled
			break
		}
		if run == recoverPagesPerRun {
			return RecoverResult{}, workflow.NewContinueAsNewError(ctx, RecoverWorkflow, in)
		}
		var page activities.RecoverPageResult
		if err := workflow.ExecuteActivity(actx, a.RecoverPage, in.RecoverInput).Get(ctx, &page); err != nil {
			return RecoverResult{}, fmt.Errorf("recover %s: %w", in.OperationID, err)
		}
		in.Replayed += page.Replayed
		in.Pages++
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("%d failed deliveries replayed in %d pages", in.Replayed, in.Pages))
		if page.Done {
			break
		}
	}
	fctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: dbRetry})
	if err := workflow.ExecuteActivity(fctx, a.FinishOperation, in.OperationID, status).Get(ctx, nil); err != nil {
		return RecoverResult{}, fmt.Errorf("recover %s: %w", in.OperationID, err)
	}
	if in.SearchAttributes {
		if err := workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(status)); err != nil {
			return RecoverResult{}, err
		}
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("%s: %d failed deliveries replayed in %d pages", status, in.Replayed, in.Pages))
	return RecoverResult{Status: status, Replayed: in.Replayed}, nil
}
