package workflows

import (
	"fmt"
	"net/url"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/delivery"
)

// StoredEvent is what an event's workflow start needs of the event's row.
type StoredEvent struct {
	ID         string // the internal key (delivery.EventKey)
	ClientID   string // the publisher's own id
	WorkflowID string
	AppID      string
	Type       string
	Topic      string
	// Callback is a one-off callback's event; TargetURL is where it goes.
	Callback   bool
	TargetURL  string
	ReceivedAt time.Time
	Size       int // bytes of data
}

// EventStart is how a stored event's workflow starts on queue: one workflow id per event, never
// reused, so a second start (the outbox and the reconciler, a retried activity) is rejected. in
// carries the settings the workflow needs beyond the event (its EventID and type are filled in).
func EventStart(ev StoredEvent, queue string, in EventInput) (client.StartWorkflowOptions, EventInput) {
	opts := client.StartWorkflowOptions{
		ID:                    ev.WorkflowID,
		TaskQueue:             queue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
	opts.StaticSummary, opts.StaticDetails = eventSummary(ev)
	in.EventID, in.EventType, in.Topic = ev.ID, ev.Type, ev.Topic
	return opts, in
}

// eventSummary is what the Web UI shows of an event's workflow, in words (user metadata): its
// current details then say how its deliveries stand.
func eventSummary(ev StoredEvent) (summary, details string) {
	if ev.Callback {
		summary = delivery.CallbackSummary(ev.Type, ev.TargetURL)
	} else {
		summary = fmt.Sprintf("%s from %s", ev.Type, ev.AppID)
		if ev.Topic != "" {
			summary = fmt.Sprintf("%s (topic %s) from %s", ev.Type, ev.Topic, ev.AppID)
		}
	}
	details = fmt.Sprintf("event `%s` received %s, %d bytes of data\n\nits deliveries: `GET /v1/events/%s`",
		ev.ClientID, ev.ReceivedAt.UTC().Format(time.RFC3339), ev.Size, url.PathEscape(ev.ClientID))
	return summary, details
}
