package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/webhook"
	"github.com/jmoiron/sqlx/types"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Attempt makes one attempt of a delivery. Temporal's retry policy calls it again on failure; the
// failure carries the next delay so Retry-After and the subscription's own backoff are honoured,
// within the policy's bounds. Its ledger row is written before the POST and completed after it.
func (a *Activities) Attempt(ctx context.Context, in AttemptInput) (AttemptResult, error) {
	n := in.Offset + int(activity.GetInfo(ctx).Attempt)
	// The outcome of the previous try's POST, if it could not be recorded then (the database was
	// away), is recorded first: a success ends the delivery without another POST.
	prev, err := a.recordCarried(ctx)
	if err != nil {
		return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
	}
	d, err := a.Repo.GetDelivery(ctx, db.AnyApp(), in.DeliveryID)
	if errors.Is(err, db.ErrNotFound) {
		return AttemptResult{}, temporal.NewNonRetryableApplicationError("delivery "+in.DeliveryID+" does not exist", ErrTypeNotFound, err)
	}
	if err != nil {
		return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
	}
	if res, ok := a.carriedSuccess(ctx, d, prev); ok {
		return res, nil
	}
	if d.Status != delivery.StatusPending {
		// A previous try of this activity may have claimed an attempt and died before recording it
		// while another attempt ended the delivery: that row would stay "sending" for ever.
		if err := a.Repo.InterruptAttempts(ctx, []string{d.ID}); err != nil {
			return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
		}
		return AttemptResult{}, temporal.NewNonRetryableApplicationError("delivery already "+d.Status, ErrTypeFinished, nil, d.Status)
	}
	ev, err := a.event(ctx, d.EventID)
	if err != nil {
		return AttemptResult{}, err
	}
	var t sendTarget
	var sub db.Subscription
	if d.SubscriptionID.Valid {
		sub, err = a.Repo.GetSubscription(ctx, db.AnyApp(), d.SubscriptionID.String)
		if errors.Is(err, db.ErrNotFound) {
			return AttemptResult{}, temporal.NewNonRetryableApplicationError("subscription "+d.SubscriptionID.String+" does not exist", ErrTypeNotFound, err)
		}
		if err != nil {
			return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
		}
		if !sub.Active {
			return AttemptResult{}, temporal.NewNonRetryableApplicationError(inactiveReason(sub), ErrTypeInactive, nil)
		}
		var apiPath string
		if sub.RegisteredEventID.Valid {
			re, err := a.Repo.RegisteredEventByID(ctx, sub.RegisteredEventID.Int64)
			if err != nil && !errors.Is(err, db.ErrNotFound) {
				return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
			}
			apiPath = re.GetAPIPath
		}
		t = subscriptionTarget(a.Config, sub, apiPath)
	} else {
		if ev.Kind != db.KindCallback {
			// Only a one-off callback is signed with the requesting app's secret; a delivery that
			// lost its subscription must never fall back to another app's key.
			return AttemptResult{}, temporal.NewNonRetryableApplicationError("delivery "+d.ID+" has no subscription", ErrTypeNotFound, nil)
		}
		if t, _, err = a.callbackTarget(ctx, ev); err != nil {
			return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
		}
	}
	t.Policy = in.Policy
	if sub.ID != "" {
		// Within this try's time: what is left after the attempt's own timeout and a margin.
		within := fanOutThrottleWait
		if dl, ok := ctx.Deadline(); ok {
			within = max(0, time.Until(dl)-in.Policy.Timeout-2*time.Second)
		}
		g, err := a.gateFor(ctx, sub, in.Reservation, within, in.Policy.Timeout, true)
		if err != nil {
			return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
		}
		if !g.send {
			return throttledAttempt(in, g, n-1)
		}
		defer a.release(ctx, sub.ID, g.lease)
		if err := sleepUntil(ctx, g.at); err != nil {
			return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
		}
	}
	won, err := a.Repo.ClaimAttempts(ctx, []db.Claim{{DeliveryID: d.ID, Attempt: n, URL: t.URL}})
	if err != nil {
		return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
	}
	if !won[d.ID] {
		// A worker presumed dead is still making (or made) this attempt: never POST it twice.
		return AttemptResult{}, temporal.NewApplicationError(fmt.Sprintf("attempt %d of %s is being made elsewhere", n, d.ID), ErrTypeFailed)
	}
	r, row, sent := a.attempt(ctx, ev, d, t, n)
	if err := a.record(ctx, []db.Attempt{row}); err != nil {
		a.carry(ctx, err) // the next try records it before anything else
		return AttemptResult{}, fmt.Errorf("attempt %s: %w", in.DeliveryID, err)
	}
	if sub.ID != "" {
		a.adapt(ctx, sub, in.Policy, r)
	}
	switch {
	case r.Succeeded():
		a.Metrics.ObserveDelivered(delivery.StatusSucceeded, ev.ReceivedAt)
		a.groupEnded(ctx, d.ID)
		a.recovered(ctx, ev, d, n, r)
		return AttemptResult{Attempt: n, Status: r.Status}, nil
	case r.Gone():
		return AttemptResult{}, temporal.NewNonRetryableApplicationError(r.Reason(), ErrTypeGone, nil, r.Status)
	case !sent:
		// Nothing was sent: the request could not be built (an unusable secret or URL).
		return AttemptResult{}, temporal.NewNonRetryableApplicationError(r.Err, ErrTypeFailed, nil, 0)
	}
	detail := Exhausted{Attempt: n, Status: r.Status}
	delay, inTime := in.Policy.NextDelay(n, r.RetryAfter, d.CreatedAt, time.Now())
	last := !inTime || (in.Policy.MaxAttempts > 0 && n >= in.Policy.MaxAttempts)
	if last && in.FinishWhenExhausted {
		// Closing the delivery here saves the workflow a Finish activity. If it fails, the error
		// is not ErrTypeExhausted and the workflow finishes the delivery itself.
		fr, err := a.Finish(ctx, FinishInput{DeliveryID: d.ID, Status: delivery.StatusFailed})
		if err != nil {
			return AttemptResult{}, temporal.NewNonRetryableApplicationError(r.Reason(), ErrTypeFailed, err, detail)
		}
		detail.Disabled = fr.Disabled
		detail.Notified = a.notifyNow(ctx, d, fr.Disabled)
		return AttemptResult{}, temporal.NewNonRetryableApplicationError(r.Reason(), ErrTypeExhausted, nil, detail)
	}
	if !inTime {
		return AttemptResult{}, temporal.NewNonRetryableApplicationError(r.Reason()+" (no time left for another attempt)", ErrTypeFailed, nil, detail)
	}
	return AttemptResult{}, temporal.NewApplicationErrorWithOptions(r.Reason(), ErrTypeFailed, temporal.ApplicationErrorOptions{
		NextRetryDelay: delay,
		Details:        []any{detail},
	})
}

// attempt sends attempt n of delivery d and returns its ledger row, not yet recorded: callers
// record one row (Attempt) or a page's rows in a few statements (FanOutPage). A request that
// cannot be built (signing, URL) is a failed attempt with no headers sent.
func (a *Activities) attempt(ctx context.Context, ev db.Event, d db.Delivery, t sendTarget, n int) (r webhook.Result, row db.Attempt, sent bool) {
	started := time.Now()
	row = db.Attempt{DeliveryID: d.ID, Attempt: n, StartedAt: started, RequestHeaders: types.JSONText("{}")}
	m := message{
		ID: ev.ClientID, EventType: ev.Type, Service: ev.Topic, AppID: ev.AppID, Data: json.RawMessage(ev.Payload),
		CreatedAt: ev.ReceivedAt, GetAPIPath: fillPath(t.APIPath, ev.Payload), DeliveryID: d.ID,
		RetryCount: n - 1, Replay: d.Replay,
	}
	if ev.Kind == db.KindTest {
		// A test send looks like the publisher's event, marked as a test.
		m.Test, m.AppID = true, t.sub.PublisherAppID
	}
	body, err := json.Marshal(m)
	if err == nil {
		r, err = a.Sender.Send(ctx, webhook.Request{
			URL: t.URL, MessageID: ev.ID, Attempt: n, Secrets: t.Secrets, CallbackKey: t.CallbackKey,
			Body: body, Timeout: t.Policy.Timeout,
		})
	}
	if err != nil {
		r = webhook.Result{Err: "not sent: " + err.Error(), StartedAt: started}
		row.Error = r.Err
		a.Log.Error("attempt not sent", "event_id", ev.ID, "delivery_id", d.ID, "attempt", n, "error", err)
		return r, row, false
	}
	a.Metrics.ObserveAttempt(r.Status, r.Duration)
	hdrs, _ := json.Marshal(r.SentHeaders)
	row = db.Attempt{
		DeliveryID: d.ID, Attempt: n, RequestHeaders: hdrs, ResponseBody: r.ResponseBody,
		Error: r.Err, DurationMS: r.Duration.Milliseconds(), StartedAt: r.StartedAt, Succeeded: r.Succeeded(),
	}
	if r.Status != 0 {
		row.ResponseStatus.Int32, row.ResponseStatus.Valid = int32(r.Status), true
	}
	if r.ResponseHeaders != nil {
		rh, _ := json.Marshal(r.ResponseHeaders)
		row.ResponseHeaders.JSONText, row.ResponseHeaders.Valid = rh, true
	}
	if !r.Succeeded() && row.Error == "" {
		row.Error = r.Reason()
	}
	level := slog.LevelDebug
	if !r.Succeeded() {
		level = slog.LevelWarn
	}
	if a.Log.Enabled(ctx, level) { // a success is logged at debug: off by default, and then built for nothing
		a.Log.Log(ctx, level, "attempt", "event_id", ev.ID, "delivery_id", d.ID, "workflow_id", activity.GetInfo(ctx).WorkflowExecution.ID,
			"attempt", n, "status", r.Status, "error", row.Error, "duration_ms", row.DurationMS)
	}
	return r, row, true
}

// message is the JSON body receivers get: the OS1 async-callback shape {eventType, service, data}
// plus ids for deduplication and the OsmoX-style retryCount.
type message struct {
	ID         string          `json:"id"`
	EventType  string          `json:"eventType"`
	Service    string          `json:"service,omitempty"`
	AppID      string          `json:"appId"`
	Data       json.RawMessage `json:"data"`
	CreatedAt  time.Time       `json:"createdAt"`
	GetAPIPath string          `json:"getApiPath,omitempty"`
	DeliveryID string          `json:"deliveryId"`
	RetryCount int             `json:"retryCount"`
	Replay     int             `json:"replay,omitempty"`
	Test       bool            `json:"test,omitempty"` // a test send (POST /v1/subscriptions/{id}/test)
}

// fillPath replaces {name} in a registered getApiPath with the event data's top-level field name.
func fillPath(path string, data []byte) string {
	if path == "" || !strings.Contains(path, "{") {
		return path
	}
	var fields map[string]any
	if json.Unmarshal(data, &fields) != nil {
		return path
	}
	return pathParam.ReplaceAllStringFunc(path, func(m string) string {
		switch v := fields[m[1:len(m)-1]].(type) {
		case string:
			return v
		case float64:
			return fmt.Sprint(v)
		}
		return m
	})
}

// LastAttempt returns the last attempt number in the ledger, so a retry series started by a signal
// continues the numbering.
func (a *Activities) LastAttempt(ctx context.Context, deliveryID string) (int, error) {
	return a.Repo.LastAttempt(ctx, deliveryID)
}

// Finish closes a delivery as failed or cancelled and applies the subscription's failure streak.
func (a *Activities) Finish(ctx context.Context, in FinishInput) (FinishResult, error) {
	r, err := a.Repo.FinishDelivery(ctx, in.DeliveryID, in.Status, in.Reason, a.Config.DisableAfterFailures, in.Gone)
	if err != nil {
		return FinishResult{}, err
	}
	a.Metrics.ObserveDelivered(in.Status, time.Time{})
	a.groupEnded(ctx, in.DeliveryID)
	return FinishResult{Disabled: r.Disabled}, nil
}
