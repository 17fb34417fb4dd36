// Package workflows orchestrates deliveries. EventWorkflow runs once per event and pays the engine's
// cost once for the whole fan-out; only deliveries whose first attempt failed get a DeliveryWorkflow
// of their own, which retries them and answers the cancel and retry signals.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
)

// Signal names accepted by DeliveryWorkflow. Both take an optional JSON payload {"reason": "..."}.
const (
	SignalCancel = delivery.SignalCancel
	SignalRetry  = delivery.SignalRetry
	QueryStatus  = "status"
)

// Search attributes of DeliveryWorkflows, the deliveries that needed retries (the ones operators
// look for); `make dev` registers them. Event workflows carry none: setting them on every event
// cost about a tenth of the ingest rate.
var (
	AttrEventID        = temporal.NewSearchAttributeKeyKeyword("HookdEventId")
	AttrEventType      = temporal.NewSearchAttributeKeyKeyword("HookdEventType")
	AttrTopic          = temporal.NewSearchAttributeKeyKeyword("HookdTopic")
	AttrSubscriptionID = temporal.NewSearchAttributeKeyKeyword("HookdSubscriptionId")
	AttrStatus         = temporal.NewSearchAttributeKeyKeyword("HookdDeliveryStatus")
)

// SearchAttributeNames lists the attributes for registration (all of type Keyword). The scripts
// and manifests that register them on a server (scripts/dev.sh, scripts/temporal-server.sh,
// docker-compose.yml, the Helm chart's notes) and testenv list them again: TestSearchAttributeLists
// checks that every list names exactly these.
var SearchAttributeNames = []string{AttrEventID.GetName(), AttrEventType.GetName(), AttrTopic.GetName(),
	AttrSubscriptionID.GetName(), AttrStatus.GetName()}

// SignalPayload is the body of the cancel and retry signals.
type SignalPayload struct {
	Reason string `json:"reason,omitempty"`
}

// EventInput starts an EventWorkflow. It carries ids only: payloads and secrets stay in PostgreSQL.
type EventInput struct {
	EventID   string // the internal key (delivery.EventKey)
	EventType string
	Topic     string
	// SearchAttributes is false when the server lacks hookd's attributes (a bare dev server).
	SearchAttributes bool
	// LocalFanOut runs FanOut as a local activity: no activity task round trip through the server.
	LocalFanOut bool
	// PageTimeout is one fan-out page's budget (0: activities.PageTimeout).
	PageTimeout time.Duration `json:",omitempty"`
	// After is where the fan-out resumes and Totals what it did so far, after a continue-as-new.
	After  string       `json:",omitempty"`
	Totals *EventResult `json:",omitempty"`
}

// EventResult summarises an event's deliveries.
type EventResult struct {
	Matched   int
	Succeeded int
	Failed    int
	Cancelled int
	// Retrying counts the deliveries handed to DeliveryWorkflows after a failed first attempt.
	Retrying     int `json:",omitempty"`
	SkippedCount int `json:",omitempty"`
	Skipped      []activities.Skipped
}

var a *activities.Activities

// dbRetry retries our own infrastructure failures (database, SMTP) for as long as they last.
var dbRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute}

// Register registers every workflow type hookd runs, the legacy ones included, under their type
// names: with a worker, and with the replayer that checks the recorded histories.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(EventWorkflowV2)
	r.RegisterWorkflowWithOptions(EventWorkflowV1, workflow.RegisterOptions{Name: EventWorkflowV1Type})
	r.RegisterWorkflow(DeliveryWorkflow)
	r.RegisterWorkflow(ReplayWorkflow)
	r.RegisterWorkflow(RecoverWorkflow)
	r.RegisterWorkflow(RemovedEventWorkflow)
	r.RegisterWorkflow(RetentionWorkflow)
}
