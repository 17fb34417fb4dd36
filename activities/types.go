// Package activities holds every side effect of a delivery: database, HTTP and SMTP. Workflows
// call them through an *Activities value that carries the dependencies.
package activities

import (
	"fmt"
	"math"
	"time"
)

// Policy is a resolved retry schedule for one delivery (defaults merged with the subscription's own).
type Policy struct {
	InitialInterval    time.Duration
	BackoffCoefficient float64
	MaxInterval        time.Duration
	MaxAttempts        int           // total attempts, the first included; 0 = unlimited
	MaxDuration        time.Duration // from the first attempt; 0 = unlimited
	Timeout            time.Duration // one attempt
}

// String reads the policy out for operators (the Web UI's workflow details).
func (p Policy) String() string {
	attempts := "unlimited attempts"
	if p.MaxAttempts > 0 {
		attempts = fmt.Sprintf("up to %d attempts", p.MaxAttempts)
	}
	within := ""
	if p.MaxDuration > 0 {
		within = " within " + p.MaxDuration.String()
	}
	return fmt.Sprintf("%s%s; waits from %s (×%g) up to %s; %s per attempt", attempts, within, p.InitialInterval,
		p.BackoffCoefficient, p.MaxInterval, p.Timeout)
}

// Backoff is the wait after failed attempt n (n ≥ 1).
func (p Policy) Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.BackoffCoefficient, float64(n-1))
	if p.MaxInterval > 0 && (d > float64(p.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d)) {
		return p.MaxInterval
	}
	return time.Duration(d)
}

// NextDelay is the wait after failed attempt n: the backoff, or the receiver's Retry-After when
// that is longer, never more than MaxInterval. inTime is false when the next attempt would come
// after MaxDuration (counted from firstAttempt): the delivery has run out of time.
func (p Policy) NextDelay(n int, retryAfter time.Duration, firstAttempt, now time.Time) (d time.Duration, inTime bool) {
	d = max(p.Backoff(n), retryAfter)
	if p.MaxInterval > 0 {
		d = min(d, p.MaxInterval)
	}
	if p.MaxDuration > 0 && !firstAttempt.IsZero() && now.Add(d).After(firstAttempt.Add(p.MaxDuration)) {
		return d, false
	}
	return d, true
}

// FanOutInput names the event to fan out.
type FanOutInput struct {
	EventID string
}

// Retry is a delivery whose first attempt failed; a DeliveryWorkflow takes it from here.
type Retry struct {
	DeliveryID     string
	WorkflowID     string
	SubscriptionID string
	Attempts       int           // attempts made so far
	Delay          time.Duration // wait before the next attempt (backoff or Retry-After)
	Gone           bool          // the receiver answered 410: finish at once
	Policy         Policy
	// Host is the receiver's host, for the summaries the Web UI shows (never its path or query,
	// which may hold a token).
	Host string `json:",omitempty"`
	// Reservation is a send slot the fan-out reserved for a throttled subscription (no attempt
	// made yet: Attempts is 0 and Delay reaches the slot).
	Reservation *Reservation `json:",omitempty"`
}

// Skipped is a subscription that did not receive the event, and why.
type Skipped struct {
	SubscriptionID string
	Reason         string
}

// Outcome is how one delivery ended, as reported in completion callbacks.
type Outcome struct {
	DeliveryID     string `json:"deliveryId"`
	SubscriptionID string `json:"subscriptionId,omitempty"`
	Status         string `json:"status"`
	Attempts       int    `json:"attempts"`
}

// FanOutResult is the outcome of the first round of an event's deliveries.
type FanOutResult struct {
	Matched   int
	Succeeded []Outcome
	Retry     []Retry
	Skipped   []Skipped
	AppID     string
	ClientID  string // the event's id as its publisher knows it
	NotifyURL string // the publisher's ?callbackURL=, told when every delivery has finished
}

// CallbackInput creates a one-off callback: an event of kind callback delivered to URL only.
type CallbackInput struct {
	ID        string // the request id the caller knows (the app qualifies it)
	AppID     string
	URL       string
	EventType string
	Service   string
	Data      any
	// OutcomesOf, when set, names a group of deliveries whose outcomes the callback reports: the
	// activity adds them to Data from the database (at most MaxOutcomesReported, with counts of
	// all), so no workflow carries them in its history.
	OutcomesOf string `json:",omitempty"`
}

// MaxOutcomesReported bounds the deliveries a completion callback lists; counts cover all of them.
const MaxOutcomesReported = 1000

// AttemptInput asks for one attempt series of a delivery; the ledger attempt number is
// Offset + the activity's own attempt number.
type AttemptInput struct {
	DeliveryID string
	Offset     int
	Policy     Policy
	// FinishWhenExhausted lets the last failing attempt close the delivery as failed itself
	// (DeliveryWorkflow version 1 and later); older workflows call Finish.
	FinishWhenExhausted bool `json:",omitempty"`
	// ThrottleAware: the workflow waits out a Throttled result (throttle-wait); an older one gets
	// a retryable failure instead.
	ThrottleAware bool `json:",omitempty"`
	// Reservation is the send slot an earlier Throttled result reserved.
	Reservation *Reservation `json:",omitempty"`
}

// Reservation is a reserved send slot of a throttled subscription: its time and, under
// maxInFlight, its lease.
type Reservation struct {
	At    time.Time
	Lease string `json:",omitempty"`
}

// Exhausted is the detail of a failed attempt (ErrTypeFailed, ErrTypeExhausted): its number, the
// receiver's status, and for the last one whether closing the delivery disabled the subscription.
type Exhausted struct {
	Attempt  int
	Status   int
	Disabled bool `json:",omitempty"`
	// Notified: the failure e-mail (and the disabled one, if Disabled) went out with the attempt.
	Notified bool `json:",omitempty"`
}

// AttemptResult describes the successful attempt.
type AttemptResult struct {
	Attempt int
	Status  int
	// Throttled: no attempt was made; the subscription's limits (or a 429's pause) say wait Wait,
	// then try again with Reservation, if one was made.
	Throttled   bool          `json:",omitempty"`
	Wait        time.Duration `json:",omitempty"`
	Reservation *Reservation  `json:",omitempty"`
}

// Error types of a failed attempt, as seen by workflows in ApplicationError.Type().
const (
	ErrTypeFailed   = "DeliveryFailed"   // retryable: non-2xx or transport error
	ErrTypeGone     = "ReceiverGone"     // 410: stop and disable
	ErrTypeInactive = "SubscriptionOff"  // the subscription was disabled meanwhile
	ErrTypeFinished = "DeliveryFinished" // the delivery was already closed
	// ErrTypeExhausted: the last attempt the policy allows failed and closed the delivery.
	ErrTypeExhausted = "DeliveryExhausted"
)

// FinishInput closes a delivery.
type FinishInput struct {
	DeliveryID string
	Status     string
	Reason     string
	Gone       bool
}

// FinishResult tells the workflow whether the subscription was disabled by this failure.
type FinishResult struct {
	Disabled bool
}

// NotifyInput asks for the failure e-mail of a delivery.
type NotifyInput struct {
	DeliveryID string
}
