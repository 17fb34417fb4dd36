// Package worker registers hookd's workflows and activities with a Temporal worker.
package worker

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/workflows"
)

// New builds a worker on the task queue. Several may run at once, on any number of machines.
// acts.Retries must be the Starter of the same client and queue.
func New(c client.Client, taskQueue string, acts *activities.Activities, starter *Starter) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{
		// Activities are I/O bound (HTTP and SQL); many run at once on few cores.
		MaxConcurrentActivityExecutionSize:     512,
		MaxConcurrentWorkflowTaskExecutionSize: 256,
		MaxConcurrentActivityTaskPollers:       8,
		MaxConcurrentWorkflowTaskPollers:       8,
	})
	Register(w)
	w.RegisterActivity(acts)
	w.RegisterActivityWithOptions(starter.StartDeliveries, activity.RegisterOptions{Name: workflows.StartDeliveriesActivity})
	return w
}

// Register registers every workflow type hookd runs, the legacy ones included, under their type
// names (also for replayers).
func Register(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflow(workflows.EventWorkflowV2)
	r.RegisterWorkflowWithOptions(workflows.EventWorkflowV1, workflow.RegisterOptions{Name: workflows.EventWorkflowV1Type})
	r.RegisterWorkflow(workflows.DeliveryWorkflow)
	r.RegisterWorkflow(workflows.ReplayWorkflow)
	r.RegisterWorkflow(workflows.RecoverWorkflow)
	r.RegisterWorkflow(workflows.RemovedEventWorkflow)
	r.RegisterWorkflow(workflows.RetentionWorkflow)
}
