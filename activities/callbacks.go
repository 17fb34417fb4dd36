package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
)

// CreateCallback stores a one-off callback as an event of kind callback and returns its id; the
// caller starts its EventWorkflow. Storing it twice (a retried activity) is harmless.
func (a *Activities) CreateCallback(ctx context.Context, in CallbackInput) (string, error) {
	var err error
	if in.URL, err = a.callbackURL(ctx, in); err != nil {
		return "", err
	}
	if in.OutcomesOf != "" {
		data, _ := in.Data.(map[string]any)
		if data == nil {
			data = map[string]any{}
		}
		counts, err := a.Repo.GroupCounts(ctx, in.OutcomesOf)
		if err != nil {
			return "", fmt.Errorf("callback %s: %w", in.ID, err)
		}
		outcomes, err := a.GroupOutcomes(ctx, in.OutcomesOf)
		if err != nil {
			return "", fmt.Errorf("callback %s: %w", in.ID, err)
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		data["counts"], data["deliveries"] = counts, outcomes
		if total > len(outcomes) {
			data["deliveriesTruncated"] = true
		}
		in.Data = data
	}
	ev, err := callbacks.Callback{ID: in.ID, AppID: in.AppID, URL: in.URL, EventType: in.EventType, Service: in.Service,
		Data: in.Data}.Event()
	if err != nil {
		return "", err
	}
	if _, _, err = a.Repo.InsertEvent(ctx, ev); err != nil {
		return "", fmt.Errorf("callback %s: %w", in.ID, err)
	}
	if in.URLOfOperation != "" {
		// The callback event holds the URL now; the operation that kept it for the workflow ends
		// (and retention deletes it).
		if err := a.Repo.FinishOperation(ctx, in.URLOfOperation, db.OperationCompleted); err != nil {
			return "", fmt.Errorf("callback %s: %w", in.ID, err)
		}
	}
	return ev.ID, nil
}

// callbackURL is where a callback goes: read from the row the workflow named (an event's
// notify_url, a replay operation's callbackUrl), or given by a caller outside workflows (or a
// workflow of an older release).
func (a *Activities) callbackURL(ctx context.Context, in CallbackInput) (string, error) {
	switch {
	case in.URL != "":
		return in.URL, nil
	case in.URLOfEvent != "":
		ev, err := a.event(ctx, in.URLOfEvent)
		if err != nil {
			return "", err
		}
		if ev.NotifyURL.String != "" {
			return ev.NotifyURL.String, nil
		}
	case in.URLOfOperation != "":
		op, err := a.Repo.GetOperation(ctx, db.OwnedBy(in.AppID), in.URLOfOperation)
		if errors.Is(err, db.ErrNotFound) {
			return "", temporal.NewNonRetryableApplicationError("operation "+in.URLOfOperation+" does not exist", ErrTypeNotFound, err)
		}
		if err != nil {
			return "", fmt.Errorf("callback %s: %w", in.ID, err)
		}
		var p db.ReplayParams
		if err := json.Unmarshal(op.Params, &p); err != nil {
			return "", temporal.NewNonRetryableApplicationError("operation "+op.ID+": "+err.Error(), ErrTypeNotFound, err)
		}
		if p.CallbackURL != "" {
			return p.CallbackURL, nil
		}
	}
	return "", temporal.NewNonRetryableApplicationError("callback "+in.ID+" has no URL", ErrTypeNotFound, nil)
}

// GroupOutcomes lists how the deliveries of a group ended (at most MaxOutcomesReported).
func (a *Activities) GroupOutcomes(ctx context.Context, group string) ([]Outcome, error) {
	ds, err := a.Repo.GroupDeliveries(ctx, group, MaxOutcomesReported)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, 0, len(ds))
	for _, d := range ds {
		out = append(out, Outcome{DeliveryID: d.ID, SubscriptionID: d.SubscriptionID.String, Status: d.Status, Attempts: d.Attempts})
	}
	return out, nil
}

// callbackTarget is the one delivery of a one-off callback: to the URL named on the request,
// signed with the calling app's secret, under the default retry policy.
func (a *Activities) callbackTarget(ctx context.Context, ev db.Event) (sendTarget, db.Delivery, error) {
	app, err := a.Repo.GetApp(ctx, ev.AppID)
	if err != nil {
		return sendTarget{}, db.Delivery{}, err
	}
	d := db.Delivery{ID: delivery.DeliveryID(ev.ID, ev.TargetURL.String, 0), EventID: ev.ID, AppID: ev.AppID, URL: ev.TargetURL.String,
		WorkflowID: delivery.DeliveryWorkflowID(ev.ID, "callback", 0)}
	return sendTarget{URL: ev.TargetURL.String, Secrets: []string{app.Secret}, Policy: delivery.PolicyFor(a.Config, db.RetryPolicy{})}, d, nil
}
