package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/delivery"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
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
	r, err := newDeliveryRun(ctx, in)
	if err != nil {
		return DeliveryResult{}, err
	}
	end := r.run(ctx)
	return end.res, end.err
}

// deliveryRun is a DeliveryWorkflow's state between its commands. Its methods take the workflow's
// context and issue the workflow's commands; the order in which they do so is the workflow's
// history, so a change to it goes through workflow.GetVersion.
type deliveryRun struct {
	in  DeliveryInput
	log log.Logger
	// attemptFinishes is version attempt-finishes 1: the last failing attempt closes the delivery
	// and sends its e-mails itself, every failed attempt reports its number, and the search
	// attributes may come with the start.
	attemptFinishes bool
	state           deliveryState // what the status query reports
	cancelCh        workflow.ReceiveChannel
	retryCh         workflow.ReceiveChannel
	// started is when the policy's maxDuration began: the workflow's start, or (version
	// throttle-duration-from-attempt) the series that made the first attempt.
	started time.Time
	// lastErr is how the last attempt series ended, for the reason a failure gives.
	lastErr string
	// lostSeries counts the series started again after tries that made no attempt.
	lostSeries int
	// polls counts Throttled results in a row with no slot reserved.
	polls int
	// reservation is a throttled subscription's send slot for the next attempt: reserved by the
	// fan-out, or by the last Throttled result.
	reservation *delivery.Reservation
}

// ending is how a DeliveryWorkflow ends: its result and error. A nil *ending means go on.
type ending struct {
	res DeliveryResult
	err error
}

// signal is a cancel or retry signal that came while the workflow waited or attempted (name ""
// when none came).
type signal struct{ name, reason string }

// newDeliveryRun sets up a DeliveryWorkflow: its version, status query, search attributes and
// signal channels.
func newDeliveryRun(ctx workflow.Context, in DeliveryInput) (*deliveryRun, error) {
	r := &deliveryRun{in: in, log: workflow.GetLogger(ctx), reservation: in.Reservation}
	// Version 1: the last failing attempt closes the delivery and sends its e-mails itself, every
	// failed attempt reports its number, and the search attributes may come with the start: that
	// saves the LastAttempt, Finish and NotifyFailure activities (and their workflow tasks) of
	// every delivery that gives up.
	r.attemptFinishes = workflow.GetVersion(ctx, "attempt-finishes", workflow.DefaultVersion, 1) >= 1
	r.state = deliveryState{Status: delivery.StatusPending, Attempts: in.Attempts}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (deliveryState, error) { return r.state, nil }); err != nil {
		return nil, err
	}
	if in.SearchAttributes && !(r.attemptFinishes && in.AttributesAtStart) {
		_ = workflow.UpsertTypedSearchAttributes(ctx, in.searchAttributes()...)
	}
	r.cancelCh = workflow.GetSignalChannel(ctx, SignalCancel)
	r.retryCh = workflow.GetSignalChannel(ctx, SignalRetry)
	r.started = workflow.Now(ctx)
	return r, nil
}

// run closes a delivery whose first attempt was answered 410, or waits out the first backoff
// and runs attempt series until one ends the delivery.
func (r *deliveryRun) run(ctx workflow.Context) *ending {
	if r.in.Gone {
		return r.finish(ctx, delivery.StatusFailed, "the receiver answered 410 Gone", true)
	}
	if end := r.waitUnlessCancelled(ctx, r.in.Delay); end != nil {
		return end
	}
	for {
		if end := r.series(ctx); end != nil {
			return end
		}
	}
}

// series runs one attempt series and decides what its end means: the delivery's end, or
// another series.
func (r *deliveryRun) series(ctx workflow.Context) *ending {
	opts, end := r.attemptOptions(ctx)
	if end != nil {
		return end
	}
	sig, ar, err := r.attempt(ctx, opts)
	switch {
	case err == nil && ar.Throttled:
		return r.throttled(ctx, sig, ar)
	case err == nil:
		return r.succeeded(ctx, ar.Attempt)
	}
	return r.failed(ctx, sig, err)
}

// attemptOptions are the options of the next Attempt activity, whose retries make the series'
// attempts; the delivery fails when the policy leaves no attempt or no time.
func (r *deliveryRun) attemptOptions(ctx workflow.Context) (workflow.ActivityOptions, *ending) {
	in := r.in
	remainingAttempts := 0
	if in.Policy.MaxAttempts > 0 {
		remainingAttempts = in.Policy.MaxAttempts - r.state.Attempts
		if remainingAttempts <= 0 {
			return workflow.ActivityOptions{}, r.finish(ctx, delivery.StatusFailed, "", false,
				r.gaveUp(fmt.Sprintf("the policy allows %d", in.Policy.MaxAttempts)))
		}
	}
	opts := workflow.ActivityOptions{
		Summary: attemptSummary(in, r.state.Attempts+1),
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
		left := in.Policy.MaxDuration - workflow.Now(ctx).Sub(r.started)
		if left <= 0 {
			return opts, r.finish(ctx, delivery.StatusFailed, "", false,
				r.gaveUp("no time left within the policy's "+in.Policy.MaxDuration.String()))
		}
		opts.ScheduleToCloseTimeout = left
	}
	return opts, nil
}

// attempt runs an attempt series (one Attempt activity with opts) and returns its result and the
// signal that came meanwhile, which cancels the activity.
func (r *deliveryRun) attempt(ctx workflow.Context, opts workflow.ActivityOptions) (signal, activities.AttemptResult, error) {
	actx, cancelAttempt := workflow.WithCancel(workflow.WithActivityOptions(ctx, opts))
	fut := workflow.ExecuteActivity(actx, a.Attempt, activities.AttemptInput{
		DeliveryID: r.in.DeliveryID, Offset: r.state.Attempts, Policy: r.in.Policy, FinishWhenExhausted: r.attemptFinishes,
		ThrottleAware: true, Reservation: r.reservation,
	})
	r.reservation = nil
	var sig signal
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(fut, func(workflow.Future) {})
	r.receiveSignals(ctx, sel, &sig)
	sel.Select(ctx)
	if sig.name != "" {
		cancelAttempt()
	}
	var ar activities.AttemptResult
	err := fut.Get(ctx, &ar)
	return sig, ar, err
}

// receiveSignals adds the cancel and retry signals to sel: the one that comes is stored in got.
func (r *deliveryRun) receiveSignals(ctx workflow.Context, sel workflow.Selector, got *signal) {
	sel.AddReceive(r.retryCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); got.name = SignalRetry })
	sel.AddReceive(r.cancelCh, func(c workflow.ReceiveChannel, _ bool) {
		var p SignalPayload
		c.Receive(ctx, &p)
		*got = signal{name: SignalCancel, reason: p.Reason}
	})
}

// wait sleeps for d unless a signal comes, and returns that signal.
func (r *deliveryRun) wait(ctx workflow.Context, d time.Duration) signal {
	var got signal
	if d <= 0 {
		return got
	}
	r.state.NextAttempt = workflow.Now(ctx).Add(d)
	tctx, stopTimer := workflow.WithCancel(ctx)
	defer stopTimer()
	sel := workflow.NewSelector(ctx)
	timer := workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{
		Summary: fmt.Sprintf("wait %s before attempt %d", d, r.state.Attempts+1)})
	sel.AddFuture(timer, func(workflow.Future) {})
	r.receiveSignals(ctx, sel, &got)
	sel.Select(ctx)
	return got
}

// waitUnlessCancelled waits for d; a cancel signal meanwhile ends the delivery, a retry signal
// only ends the wait.
func (r *deliveryRun) waitUnlessCancelled(ctx workflow.Context, d time.Duration) *ending {
	if sig := r.wait(ctx, d); sig.name == SignalCancel {
		return r.finish(ctx, delivery.StatusCancelled, cancelReason(sig.reason), false)
	}
	return nil
}

// throttled handles a series whose send the subscription's limits held back (no attempt was
// made): the next series starts at the reserved slot, or after a poll's wait.
func (r *deliveryRun) throttled(ctx workflow.Context, sig signal, ar activities.AttemptResult) *ending {
	// Only an Attempt told ThrottleAware answers so: the version marks histories that waited.
	workflow.GetVersion(ctx, "throttle-wait", workflow.DefaultVersion, 1)
	if sig.name == SignalCancel {
		return r.finish(ctx, delivery.StatusCancelled, cancelReason(sig.reason), false)
	}
	r.reservation = ar.Reservation
	// Earlier tries of this series may have made attempts (a 500, then a try the throttle held
	// back): the next series numbers on from them, instead of claiming their numbers again
	// ("being made elsewhere") and losing a try of its retry policy to each.
	r.state.Attempts = max(r.state.Attempts, ar.Attempt)
	d := ar.Wait
	// Version 1: a Throttled result with no reserved slot is a poll (maxInFlight full, or a
	// 429's pause under the 2 s wake-up lead, which the activity rounds to no wait). Asking
	// again at once made an activity and workflow task per ask with no timer between them,
	// and the history grew toward Temporal's limit: such asks wait at least a second,
	// doubling while they go on, up to maxThrottlePoll.
	if workflow.GetVersion(ctx, "throttle-poll-wait", workflow.DefaultVersion, 1) >= 1 {
		if ar.Reservation == nil && d < throttlePoll(r.polls) {
			d = throttlePoll(r.polls)
			r.polls++
		} else {
			r.polls = 0
		}
	}
	if end := r.waitUnlessCancelled(ctx, d); end != nil {
		return end
	}
	// Version 1: the policy's maxDuration counts from the first attempt (README, Retries), and a
	// delivery the throttle held back before any was made has not started it yet. Counted from
	// the workflow's start, a delivery queued behind a full maxInFlight longer than that failed
	// with 0 attempts ("no time left") without ever being sent. Until an attempt is made, the
	// clock starts again with each series: the one that makes the first attempt starts it.
	if r.state.Attempts == 0 && r.in.Policy.MaxDuration > 0 &&
		workflow.GetVersion(ctx, "throttle-duration-from-attempt", workflow.DefaultVersion, 1) >= 1 {
		r.started = workflow.Now(ctx)
	}
	return nil
}

// succeeded ends the delivery that its attempt-th attempt made.
func (r *deliveryRun) succeeded(ctx workflow.Context, attempt int) *ending {
	r.state.Attempts = attempt
	r.setStatus(ctx, delivery.StatusSucceeded)
	return &ending{res: DeliveryResult{Status: delivery.StatusSucceeded, Attempts: attempt}}
}

// failed decides what an attempt series that ended in err means, given the signal that came
// meanwhile: the delivery failed or was cancelled, or another series goes on.
func (r *deliveryRun) failed(ctx workflow.Context, sig signal, err error) *ending {
	var appErr *temporal.ApplicationError
	isApp := errors.As(err, &appErr)
	if isApp {
		r.lastErr = appErr.Message()
	} else {
		r.lastErr = err.Error()
	}
	if r.attemptFinishes && isApp && appErr.Type() == activities.ErrTypeExhausted {
		// The last attempt closed the delivery as failed, whatever signal came meanwhile.
		var f activities.Exhausted
		_ = appErr.Details(&f)
		r.state.Attempts = max(r.state.Attempts, f.Attempt)
		return r.ended(ctx, delivery.StatusFailed, r.gaveUp(""), f.Disabled, f.Notified)
	}
	if n := attemptOf(appErr); r.attemptFinishes && sig.name == "" && n > 0 {
		r.state.Attempts = max(r.state.Attempts, n)
	} else if err := r.refreshAttempts(ctx); err != nil {
		return &ending{err: err}
	}
	switch {
	case sig.name == SignalCancel:
		return r.finish(ctx, delivery.StatusCancelled, cancelReason(sig.reason), false)
	case sig.name == SignalRetry && !temporal.IsCanceledError(err) && isApp && appErr.NonRetryable():
		// the series ended on its own just as the signal came; fall through to its outcome
	case sig.name == SignalRetry:
		return nil // a fresh series starts at once, numbering continues from the ledger
	}
	if isApp {
		if end := r.refused(ctx, appErr, sig); end != nil {
			return end
		}
	}
	// The series' tries ran out before its attempts did: a try timed out or failed before it
	// made its attempt (a busy worker, a database that did not answer). That must not cost the
	// delivery its attempts: a new series goes on with the attempts left (the ledger counts
	// them), after a pause, at most maxLostSeries times.
	if r.in.Policy.MaxAttempts > 0 && r.state.Attempts < r.in.Policy.MaxAttempts && !(isApp && appErr.NonRetryable()) &&
		r.lostSeries < maxLostSeries && workflow.GetVersion(ctx, "lost-tries-continue", workflow.DefaultVersion, 1) == 1 {
		r.lostSeries++
		r.log.Warn("attempt series ended with attempts left; going on", "delivery_id", r.in.DeliveryID,
			"attempts", r.state.Attempts, "error", err)
		return r.waitUnlessCancelled(ctx, max(r.in.Policy.InitialInterval, time.Second))
	}
	// Attempts or time exhausted: the ledger's last error is the reason.
	return r.finish(ctx, delivery.StatusFailed, "", false, r.gaveUp(""))
}

// refused ends the delivery when the Attempt refused to go on (the receiver answered 410, the
// subscription is inactive, the delivery had ended); nil for any other failure.
func (r *deliveryRun) refused(ctx workflow.Context, appErr *temporal.ApplicationError, sig signal) *ending {
	switch appErr.Type() {
	case activities.ErrTypeGone:
		return r.finish(ctx, delivery.StatusFailed, appErr.Error(), true)
	case activities.ErrTypeInactive:
		return r.finish(ctx, delivery.StatusCancelled, appErr.Message(), false)
	case activities.ErrTypeFinished:
		return r.alreadyEnded(ctx, appErr, sig)
	}
	return nil
}

// alreadyEnded reports a delivery that had ended without this series: an attempt cut short by a
// retry signal finished after all and closed the delivery; or the delivery had ended before this
// run: a Reset in the Web UI re-runs its workflow, and an ended delivery is never attempted again
// (a replay is the way to send it again, as a new ledger series).
func (r *deliveryRun) alreadyEnded(ctx workflow.Context, appErr *temporal.ApplicationError, sig signal) *ending {
	status := delivery.StatusSucceeded
	_ = appErr.Details(&status)
	r.setStatus(ctx, status)
	res := DeliveryResult{Status: status, Attempts: r.state.Attempts, Reason: "the delivery had already ended " + status +
		": nothing sent again (a Reset of an ended delivery's workflow is refused; replay it: POST /v1/deliveries/" +
		r.in.DeliveryID + "/replay)"}
	if status == delivery.StatusSucceeded && sig.name == SignalRetry {
		res.Reason = ""
	}
	if status == delivery.StatusFailed && workflow.GetVersion(ctx, "failed-delivery-fails", workflow.DefaultVersion, 1) >= 1 {
		return &ending{res: res, err: temporal.NewNonRetryableApplicationError(res.Reason, ErrTypeGaveUp, nil, res)}
	}
	return &ending{res: res}
}

// finish closes the delivery with reason ("" keeps the ledger's last error in its row) and
// reports it with why (the reason when why is "").
func (r *deliveryRun) finish(ctx workflow.Context, status, reason string, gone bool, why ...string) *ending {
	fctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: dbRetry})
	var fr activities.FinishResult
	if err := workflow.ExecuteActivity(fctx, a.Finish, activities.FinishInput{
		DeliveryID: r.in.DeliveryID, Status: status, Reason: reason, Gone: gone,
	}).Get(ctx, &fr); err != nil {
		return &ending{err: err}
	}
	if len(why) > 0 {
		reason = why[0]
	}
	return r.ended(ctx, status, reason, fr.Disabled, false)
}

// ended reports how the delivery ended, e-mailing the contact when it failed (unless the
// attempt that closed it did already).
func (r *deliveryRun) ended(ctx workflow.Context, status, reason string, disabled, notified bool) *ending {
	r.setStatus(ctx, status)
	if status == delivery.StatusFailed && !notified {
		r.notify(ctx, disabled)
	}
	res := DeliveryResult{Status: status, Attempts: r.state.Attempts, Reason: reason}
	// Version 1: a failed delivery fails its workflow (a different closing command), so the
	// Web UI lists it as Failed with its reason instead of Completed like every success.
	if status == delivery.StatusFailed && workflow.GetVersion(ctx, "failed-delivery-fails", workflow.DefaultVersion, 1) >= 1 {
		return &ending{res: res, err: temporal.NewNonRetryableApplicationError(reason, ErrTypeGaveUp, nil, res)}
	}
	return &ending{res: res}
}

// notify e-mails the contact that the delivery failed and, when the failure disabled its
// subscription, that too.
func (r *deliveryRun) notify(ctx workflow.Context, disabled bool) {
	// An SMTP outage delays the e-mail; after a day of it the delivery closes without.
	mctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour, RetryPolicy: dbRetry})
	if err := workflow.ExecuteActivity(mctx, a.NotifyFailure, activities.NotifyInput{DeliveryID: r.in.DeliveryID}).Get(ctx, nil); err != nil {
		r.log.Error("failure e-mail not sent", "delivery_id", r.in.DeliveryID, "error", err)
	}
	// A separate activity, so a retry of one e-mail never sends the other again.
	if disabled {
		if err := workflow.ExecuteActivity(mctx, a.NotifyDisabled, r.in.SubscriptionID).Get(ctx, nil); err != nil {
			r.log.Error("disabled e-mail not sent", "subscription_id", r.in.SubscriptionID, "error", err)
		}
	}
}

// setStatus sets the status the query and the search attribute report.
func (r *deliveryRun) setStatus(ctx workflow.Context, s string) {
	r.state.Status = s
	if r.in.SearchAttributes {
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(s))
	}
}

// gaveUp says why the policy gave up, for the workflow's failure and result (the delivery row
// keeps the ledger's last error).
func (r *deliveryRun) gaveUp(why string) string {
	out := fmt.Sprintf("gave up after %d attempts", r.state.Attempts)
	if why != "" {
		out += " (" + why + ")"
	}
	if r.lastErr != "" {
		out += "; the last: " + r.lastErr
	}
	return out
}

// refreshAttempts reads the attempt count from the ledger after an attempt series ended, because
// Temporal retried inside the activity and only the ledger saw each attempt.
func (r *deliveryRun) refreshAttempts(ctx workflow.Context) error {
	lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: dbRetry})
	var n int
	if err := workflow.ExecuteActivity(lctx, a.LastAttempt, r.in.DeliveryID).Get(ctx, &n); err != nil {
		return fmt.Errorf("last attempt of %s: %w", r.in.DeliveryID, err)
	}
	r.state.Attempts = max(r.state.Attempts, n)
	return nil
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
