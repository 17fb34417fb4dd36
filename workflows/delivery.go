package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DeliveryInput starts a DeliveryWorkflow for a delivery whose previous attempt failed.
type DeliveryInput struct {
	delivery.Retry
	EventID          string
	EventType        string
	Topic            string
	SearchAttributes bool
	// Replay is n for the n-th replay of a finished delivery (0 for the original).
	Replay int
	// AttributesAtStart: the starter set the search attributes with the start (StartOptions), so
	// the workflow need not upsert them (version 1 and later).
	AttributesAtStart bool `json:",omitempty"`
}

func (in DeliveryInput) searchAttributes() []temporal.SearchAttributeUpdate {
	return []temporal.SearchAttributeUpdate{AttrEventID.ValueSet(in.EventID), AttrEventType.ValueSet(in.EventType),
		AttrTopic.ValueSet(in.Topic), AttrSubscriptionID.ValueSet(in.SubscriptionID),
		AttrStatus.ValueSet(map[bool]string{false: "retrying", true: "replaying"}[in.Replay > 0])}
}

// maxStartDelay is the longest first wait left to the server's start delay. A start delay costs
// no timer and no workflow task, but signals do not end it: a cancel or retry signal waits for it,
// which is fine for a few seconds and not for an hour.
const maxStartDelay = 10 * time.Second

// StartOptions are the options to start in's DeliveryWorkflow with on queue: its search
// attributes are set with the start, and a short first wait is the start's delay. in is changed
// to match.
func StartOptions(in *DeliveryInput, queue string) client.StartWorkflowOptions {
	opts := client.StartWorkflowOptions{ID: in.WorkflowID, TaskQueue: queue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE}
	if in.Delay > 0 && in.Delay <= maxStartDelay {
		opts.StartDelay, in.Delay = in.Delay, 0
	}
	if in.SearchAttributes {
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(in.searchAttributes()...)
		in.AttributesAtStart = true
	}
	opts.StaticSummary, opts.StaticDetails = in.summary()
	return opts
}

// summary is what the Web UI shows of a delivery's workflow: where it goes and how it retries, in
// words (user metadata, not part of the workflow's logic).
func (in DeliveryInput) summary() (summary, details string) {
	to := in.Host
	if to == "" {
		to = "its receiver"
	}
	verb := "retrying"
	if in.Replay > 0 {
		verb = fmt.Sprintf("replay %d of", in.Replay)
	}
	summary = fmt.Sprintf("%s delivery of %s to %s", verb, in.EventType, to)
	details = fmt.Sprintf("delivery `%s` of event `%s`", in.DeliveryID, in.EventID)
	if in.SubscriptionID != "" {
		details += fmt.Sprintf(" to subscription `%s`", in.SubscriptionID)
	}
	details += fmt.Sprintf("\n\nretry policy: %s\n\nattempts before this workflow: %d", in.Policy, in.Attempts)
	return summary, details
}

// DeliveryResult is how a delivery ended. Since version failed-delivery-fails a delivery that
// gave up ends its workflow Failed (ErrTypeGaveUp, with the result as the failure's details), so
// the Web UI's list tells it apart from the deliveries that succeeded.
type DeliveryResult struct {
	Status   string
	Attempts int
	Reason   string
}

// ErrTypeGaveUp is the failure of a DeliveryWorkflow whose delivery failed for good: the policy
// gave up, the receiver answered 410, or (after a Reset in the Web UI) the delivery had ended
// already. Not retryable: nothing would be gained by running the workflow again.
const ErrTypeGaveUp = "DeliveryGaveUp"

// ResultOf reads a DeliveryWorkflow's outcome from its result or its failure: a workflow that
// failed with ErrTypeGaveUp carries its DeliveryResult as the failure's details.
func ResultOf(err error, get func(*DeliveryResult) error) (DeliveryResult, error) {
	var r DeliveryResult
	if err == nil {
		return r, get(&r)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == ErrTypeGaveUp && appErr.Details(&r) == nil {
		return r, nil
	}
	return r, err
}

// deliveryState is what the status query reports.
type deliveryState struct {
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"nextAttempt,omitempty"`
}

// DeliveryWorkflow retries one delivery with Temporal's retry policy until it succeeds, the policy
// gives up, or an operator cancels it. A retry signal cuts the current backoff short.
func DeliveryWorkflow(ctx workflow.Context, in DeliveryInput) (DeliveryResult, error) {
	log := workflow.GetLogger(ctx)
	// Version 1: the last failing attempt closes the delivery and sends its e-mails itself, every
	// failed attempt reports its number, and the search attributes may come with the start: that
	// saves the LastAttempt, Finish and NotifyFailure activities (and their workflow tasks) of
	// every delivery that gives up.
	attemptFinishes := workflow.GetVersion(ctx, "attempt-finishes", workflow.DefaultVersion, 1) >= 1
	state := deliveryState{Status: delivery.StatusPending, Attempts: in.Attempts}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (deliveryState, error) { return state, nil }); err != nil {
		return DeliveryResult{}, err
	}
	setStatus := func(s string) {
		state.Status = s
		if in.SearchAttributes {
			_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(s))
		}
	}
	if in.SearchAttributes && !(attemptFinishes && in.AttributesAtStart) {
		_ = workflow.UpsertTypedSearchAttributes(ctx, in.searchAttributes()...)
	}
	cancelCh := workflow.GetSignalChannel(ctx, SignalCancel)
	retryCh := workflow.GetSignalChannel(ctx, SignalRetry)
	started := workflow.Now(ctx)

	// lastErr is how the last attempt series ended, for the reason a failure gives.
	lastErr := ""
	// gaveUp says why the policy gave up, for the workflow's failure and result (the delivery
	// row keeps the ledger's last error).
	gaveUp := func(why string) string {
		out := fmt.Sprintf("gave up after %d attempts", state.Attempts)
		if why != "" {
			out += " (" + why + ")"
		}
		if lastErr != "" {
			out += "; the last: " + lastErr
		}
		return out
	}

	// ended reports how the delivery ended, e-mailing the contact when it failed (unless the
	// attempt that closed it did already).
	ended := func(status, reason string, disabled, notified bool) (DeliveryResult, error) {
		setStatus(status)
		if status == delivery.StatusFailed && !notified {
			// An SMTP outage delays the e-mail; after a day of it the delivery closes without.
			mctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
				ScheduleToCloseTimeout: 24 * time.Hour, RetryPolicy: dbRetry})
			if err := workflow.ExecuteActivity(mctx, a.NotifyFailure, activities.NotifyInput{DeliveryID: in.DeliveryID}).Get(ctx, nil); err != nil {
				log.Error("failure e-mail not sent", "delivery_id", in.DeliveryID, "error", err)
			}
			// A separate activity, so a retry of one e-mail never sends the other again.
			if disabled {
				if err := workflow.ExecuteActivity(mctx, a.NotifyDisabled, in.SubscriptionID).Get(ctx, nil); err != nil {
					log.Error("disabled e-mail not sent", "subscription_id", in.SubscriptionID, "error", err)
				}
			}
		}
		res := DeliveryResult{Status: status, Attempts: state.Attempts, Reason: reason}
		// Version 1: a failed delivery fails its workflow (a different closing command), so the
		// Web UI lists it as Failed with its reason instead of Completed like every success.
		if status == delivery.StatusFailed && workflow.GetVersion(ctx, "failed-delivery-fails", workflow.DefaultVersion, 1) >= 1 {
			return res, temporal.NewNonRetryableApplicationError(reason, ErrTypeGaveUp, nil, res)
		}
		return res, nil
	}
	// finish closes the delivery with reason ("" keeps the ledger's last error in its row) and
	// reports it with why (the reason when why is "").
	finish := func(status, reason string, gone bool, why ...string) (DeliveryResult, error) {
		fctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: dbRetry})
		var fr activities.FinishResult
		if err := workflow.ExecuteActivity(fctx, a.Finish, activities.FinishInput{
			DeliveryID: in.DeliveryID, Status: status, Reason: reason, Gone: gone,
		}).Get(ctx, &fr); err != nil {
			return DeliveryResult{}, err
		}
		if len(why) > 0 {
			reason = why[0]
		}
		return ended(status, reason, fr.Disabled, false)
	}
	if in.Gone {
		return finish(delivery.StatusFailed, "the receiver answered 410 Gone", true)
	}

	// wait sleeps for d unless a signal arrives; it reports a cancel request.
	wait := func(d time.Duration) (cancelled bool, reason string) {
		if d <= 0 {
			return false, ""
		}
		state.NextAttempt = workflow.Now(ctx).Add(d)
		tctx, stopTimer := workflow.WithCancel(ctx)
		defer stopTimer()
		sel := workflow.NewSelector(ctx)
		timer := workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{
			Summary: fmt.Sprintf("wait %s before attempt %d", d, state.Attempts+1)})
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.AddReceive(retryCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.AddReceive(cancelCh, func(c workflow.ReceiveChannel, _ bool) {
			var p SignalPayload
			c.Receive(ctx, &p)
			cancelled, reason = true, p.Reason
		})
		sel.Select(ctx)
		return cancelled, reason
	}
	if cancelled, why := wait(in.Delay); cancelled {
		return finish(delivery.StatusCancelled, cancelReason(why), false)
	}

	lostSeries := 0
	polls := 0                    // Throttled results in a row with no slot reserved
	reservation := in.Reservation // a throttled subscription's send slot, reserved by the fan-out
	for {
		remainingAttempts := 0
		if in.Policy.MaxAttempts > 0 {
			remainingAttempts = in.Policy.MaxAttempts - state.Attempts
			if remainingAttempts <= 0 {
				return finish(delivery.StatusFailed, "", false, gaveUp(fmt.Sprintf("the policy allows %d", in.Policy.MaxAttempts)))
			}
		}
		opts := workflow.ActivityOptions{
			Summary: attemptSummary(in, state.Attempts+1),
			// The HTTP timeout fires first; this only catches a worker that died mid-attempt.
			StartToCloseTimeout: in.Policy.Timeout + 10*time.Second,
			// A signal cancels an attempt waiting in backoff at once; one already sending runs to its
			// end first, so two attempts of one delivery never overlap.
			WaitForCancellation: true,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:        max(in.Policy.InitialInterval, time.Millisecond),
				BackoffCoefficient:     max(in.Policy.BackoffCoefficient, 1),
				MaximumInterval:        max(in.Policy.MaxInterval, in.Policy.InitialInterval, time.Millisecond),
				MaximumAttempts:        int32(remainingAttempts),
				NonRetryableErrorTypes: []string{activities.ErrTypeGone, activities.ErrTypeInactive, activities.ErrTypeFinished},
			},
		}
		if in.Policy.MaxDuration > 0 {
			left := in.Policy.MaxDuration - workflow.Now(ctx).Sub(started)
			if left <= 0 {
				return finish(delivery.StatusFailed, "", false, gaveUp("no time left within the policy's "+in.Policy.MaxDuration.String()))
			}
			opts.ScheduleToCloseTimeout = left
		}
		actx, cancelAttempt := workflow.WithCancel(workflow.WithActivityOptions(ctx, opts))
		fut := workflow.ExecuteActivity(actx, a.Attempt, activities.AttemptInput{
			DeliveryID: in.DeliveryID, Offset: state.Attempts, Policy: in.Policy, FinishWhenExhausted: attemptFinishes,
			ThrottleAware: true, Reservation: reservation,
		})
		reservation = nil
		var (
			signal    string
			sigReason string
		)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(fut, func(workflow.Future) {})
		sel.AddReceive(retryCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); signal = SignalRetry })
		sel.AddReceive(cancelCh, func(c workflow.ReceiveChannel, _ bool) {
			var p SignalPayload
			c.Receive(ctx, &p)
			signal, sigReason = SignalCancel, p.Reason
		})
		sel.Select(ctx)
		if signal != "" {
			cancelAttempt()
		}
		var ar activities.AttemptResult
		err := fut.Get(ctx, &ar)
		if err == nil && ar.Throttled {
			// The subscription's limits held the send back; no attempt was made. Only an Attempt
			// told ThrottleAware answers so: the version marks histories that waited.
			workflow.GetVersion(ctx, "throttle-wait", workflow.DefaultVersion, 1)
			if signal == SignalCancel {
				return finish(delivery.StatusCancelled, cancelReason(sigReason), false)
			}
			reservation = ar.Reservation
			pause := ar.Wait
			// Version 1: a Throttled result with no reserved slot is a poll (maxInFlight full, or a
			// 429's pause under the 2 s wake-up lead, which the activity rounds to no wait). Asking
			// again at once made an activity and workflow task per ask with no timer between them,
			// and the history grew toward Temporal's limit: such asks wait at least a second,
			// doubling while they go on, up to maxThrottlePoll.
			if workflow.GetVersion(ctx, "throttle-poll-wait", workflow.DefaultVersion, 1) >= 1 {
				if ar.Reservation == nil && pause < throttlePoll(polls) {
					pause = throttlePoll(polls)
					polls++
				} else {
					polls = 0
				}
			}
			if cancelled, why := wait(pause); cancelled {
				return finish(delivery.StatusCancelled, cancelReason(why), false)
			}
			continue
		}
		if err == nil {
			state.Attempts = ar.Attempt
			setStatus(delivery.StatusSucceeded)
			return DeliveryResult{Status: delivery.StatusSucceeded, Attempts: ar.Attempt}, nil
		}
		var appErr *temporal.ApplicationError
		isApp := errors.As(err, &appErr)
		if isApp {
			lastErr = appErr.Message()
		} else {
			lastErr = err.Error()
		}
		if attemptFinishes && isApp && appErr.Type() == activities.ErrTypeExhausted {
			// The last attempt closed the delivery as failed, whatever signal came meanwhile.
			var f activities.Exhausted
			_ = appErr.Details(&f)
			state.Attempts = max(state.Attempts, f.Attempt)
			return ended(delivery.StatusFailed, gaveUp(""), f.Disabled, f.Notified)
		}
		if n := attemptOf(appErr); attemptFinishes && signal == "" && n > 0 {
			state.Attempts = max(state.Attempts, n)
		} else if err := refreshAttempts(ctx, in.DeliveryID, &state); err != nil {
			return DeliveryResult{}, err
		}
		switch {
		case signal == SignalCancel:
			return finish(delivery.StatusCancelled, cancelReason(sigReason), false)
		case signal == SignalRetry && !temporal.IsCanceledError(err) && isApp && appErr.NonRetryable():
			// the series ended on its own just as the signal came; fall through to its outcome
		case signal == SignalRetry:
			continue // a fresh series starts at once, numbering continues from the ledger
		}
		if isApp {
			switch appErr.Type() {
			case activities.ErrTypeGone:
				return finish(delivery.StatusFailed, appErr.Error(), true)
			case activities.ErrTypeInactive:
				return finish(delivery.StatusCancelled, appErr.Message(), false)
			case activities.ErrTypeFinished:
				// An attempt cut short by a retry signal finished after all and closed the delivery;
				// or the delivery had ended before this run: a Reset in the Web UI re-runs its
				// workflow, and an ended delivery is never attempted again (a replay is the way to
				// send it again, as a new ledger series).
				status := delivery.StatusSucceeded
				_ = appErr.Details(&status)
				setStatus(status)
				res := DeliveryResult{Status: status, Attempts: state.Attempts, Reason: "the delivery had already ended " + status +
					": nothing sent again (a Reset of an ended delivery's workflow is refused; replay it: POST /v1/deliveries/" +
					in.DeliveryID + "/replay)"}
				if status == delivery.StatusSucceeded && signal == SignalRetry {
					res.Reason = ""
				}
				if status == delivery.StatusFailed && workflow.GetVersion(ctx, "failed-delivery-fails", workflow.DefaultVersion, 1) >= 1 {
					return res, temporal.NewNonRetryableApplicationError(res.Reason, ErrTypeGaveUp, nil, res)
				}
				return res, nil
			}
		}
		// The series' tries ran out before its attempts did: a try timed out or failed before it
		// made its attempt (a busy worker, a database that did not answer). That must not cost the
		// delivery its attempts: a new series goes on with the attempts left (the ledger counts
		// them), after a pause, at most maxLostSeries times.
		if in.Policy.MaxAttempts > 0 && state.Attempts < in.Policy.MaxAttempts && !(isApp && appErr.NonRetryable()) &&
			lostSeries < maxLostSeries && workflow.GetVersion(ctx, "lost-tries-continue", workflow.DefaultVersion, 1) == 1 {
			lostSeries++
			log.Warn("attempt series ended with attempts left; going on", "delivery_id", in.DeliveryID,
				"attempts", state.Attempts, "error", err)
			if cancelled, why := wait(max(in.Policy.InitialInterval, time.Second)); cancelled {
				return finish(delivery.StatusCancelled, cancelReason(why), false)
			}
			continue
		}
		// Attempts or time exhausted: the ledger's last error is the reason.
		return finish(delivery.StatusFailed, "", false, gaveUp(""))
	}
}

// throttlePoll is how long a delivery waits before asking again after its n-th Throttled result
// in a row that reserved no slot: 1 s, doubling, at most maxThrottlePoll. A delivery queued
// behind a full maxInFlight for hours asks about once a minute: its history grows by a few
// events a minute, and the throttle row sees that many queries.
func throttlePoll(n int) time.Duration {
	if n >= 6 {
		return maxThrottlePoll
	}
	return min(time.Second<<n, maxThrottlePoll)
}

const maxThrottlePoll = time.Minute

// maxLostSeries bounds the attempt series a delivery may start again after tries that made no
// attempt, so that a permanent fault cannot grow a history without end.
const maxLostSeries = 10

// attemptOf is the attempt number a failed Attempt reports (0 when it reports none).
func attemptOf(err *temporal.ApplicationError) int {
	if err == nil || !err.HasDetails() {
		return 0
	}
	switch err.Type() {
	case activities.ErrTypeFailed:
		var f activities.Exhausted
		if err.Details(&f) == nil {
			return f.Attempt
		}
	}
	return 0
}

// attemptSummary is what the Web UI shows of an Attempt activity, whose retries (Temporal's retry
// policy) make the attempts from n on; each failed one's status is its failure.
func attemptSummary(in DeliveryInput, n int) string {
	if in.Host == "" {
		return fmt.Sprintf("POST, attempts from %d", n)
	}
	return fmt.Sprintf("POST to %s, attempts from %d", in.Host, n)
}

func cancelReason(why string) string {
	if why == "" {
		return "cancelled by an operator"
	}
	return "cancelled: " + why
}

// refreshAttempts reads the attempt count from the ledger after an attempt series ended, because
// Temporal retried inside the activity and only the ledger saw each attempt.
func refreshAttempts(ctx workflow.Context, deliveryID string, st *deliveryState) error {
	lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: dbRetry})
	var n int
	if err := workflow.ExecuteActivity(lctx, a.LastAttempt, deliveryID).Get(ctx, &n); err != nil {
		return fmt.Errorf("last attempt of %s: %w", deliveryID, err)
	}
	st.Attempts = max(st.Attempts, n)
	return nil
}
