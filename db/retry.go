package db

import (
	"context"

	"github.com/hookd/hookd/delivery"
)

// Retry hands d to its own DeliveryWorkflow under pol, after attempts attempts; url is where its
// attempts go now (its host names the receiver in the Web UI). The one place a delivery.Retry is
// made from a delivery's row.
func (d Delivery) Retry(pol delivery.Policy, attempts int, url string) delivery.Retry {
	return delivery.Retry{DeliveryID: d.ID, WorkflowID: d.WorkflowID, SubscriptionID: d.SubscriptionID.String,
		Attempts: attempts, Policy: pol, Host: delivery.HostOf(url)}
}

// ReplayIDs names the n-th replay of d: its delivery id and its workflow id.
func ReplayIDs(d Delivery) func(n int) (deliveryID, workflowID string) {
	target, wfTarget := d.URL, "callback"
	if d.SubscriptionID.Valid {
		target, wfTarget = d.SubscriptionID.String, d.SubscriptionID.String
	}
	return func(n int) (string, string) {
		return delivery.DeliveryID(d.EventID, target, n), delivery.DeliveryWorkflowID(d.EventID, wfTarget, n)
	}
}

// PrepareReplay creates the row of a replay of d (a new attempt series of a finished delivery)
// in group ("" for none: the workflow waiting for it) and returns it with its hand-off to a
// DeliveryWorkflow under pol. Every replay is prepared here: by hand, a whole event's, a recover's.
func (r *Repo) PrepareReplay(ctx context.Context, d Delivery, group string, pol delivery.Policy) (Delivery, delivery.Retry, error) {
	nd, err := r.CreateReplay(ctx, d, group, ReplayIDs(d))
	if err != nil {
		return Delivery{}, delivery.Retry{}, err
	}
	return nd, nd.Retry(pol, 0, nd.URL), nil
}
