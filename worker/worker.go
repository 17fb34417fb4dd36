// Package worker registers hookd's workflows and activities with a Temporal worker.
package worker

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/workflows"
)

// New builds a worker on the task queue. Several may run at once, on any number of machines.
// gw (acts.Retries, acts.Events and acts.Replays too) is the gateway of the same client and queue.
func New(c client.Client, taskQueue string, acts *activities.Activities, gw *engine.Gateway) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{
		// Activities are I/O bound (HTTP and SQL); many run at once on few cores.
		MaxConcurrentActivityExecutionSize:     512,
		MaxConcurrentWorkflowTaskExecutionSize: 256,
		MaxConcurrentActivityTaskPollers:       8,
		MaxConcurrentWorkflowTaskPollers:       8,
	})
	workflows.Register(w)
	w.RegisterActivity(acts)
	w.RegisterActivityWithOptions(gw.StartDeliveries, activity.RegisterOptions{Name: workflows.StartDeliveriesActivity})
	return w
}
