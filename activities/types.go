package activities

import (
	"time"

	"github.com/hookd/hookd/delivery"
)

// FanOutInput names the event to fan out.
type FanOutInput struct {
	EventID string
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
	Retry     []delivery.Retry
	Skipped   []Skipped
	AppID     string
	ClientID  string // the event's id as its publisher knows it
	// Notify: the publisher asked (?callbackURL=) to be told when every delivery has finished.
	// The URL stays in the event row (it may hold a token): CallbackInput.URLOfEvent reads it;
	// NotifyHost is for the callback's summary.
	Notify     bool   `json:",omitempty"`
	NotifyHost string `json:",omitempty"`
	// NotifyURL is the callback URL as results of older releases carried it: a workflow that
	// replays such a result still uses it.
	NotifyURL string `json:",omitempty"`
}

// CallbackInput creates a one-off callback: an event of kind callback delivered to one URL only.
// Workflows name where the activity reads the URL (URLOfEvent, URLOfOperation), so that a URL,
// which may carry a token in its query, is never in their history; URL is for callers outside
// workflows and for histories of older releases.
type CallbackInput struct {
	ID    string // the request id the caller knows (the app qualifies it)
	AppID string
	URL   string `json:",omitempty"`
	// URLOfEvent: the URL is that event's notify_url (its publisher's ?callbackURL=).
	URLOfEvent string `json:",omitempty"`
	// URLOfOperation: the URL is that operation's callbackUrl (a replay's); the operation ends
	// once the callback is stored.
	URLOfOperation string `json:",omitempty"`
	// Host is the URL's host, for the callback workflow's summary.
	Host      string `json:",omitempty"`
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
	Policy     delivery.Policy
	// FinishWhenExhausted lets the last failing attempt close the delivery as failed itself
	// (DeliveryWorkflow version 1 and later); older workflows call Finish.
	FinishWhenExhausted bool `json:",omitempty"`
	// ThrottleAware: the workflow waits out a Throttled result (throttle-wait); an older one gets
	// a retryable failure instead.
	ThrottleAware bool `json:",omitempty"`
	// Reservation is the send slot an earlier Throttled result reserved.
	Reservation *delivery.Reservation `json:",omitempty"`
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
	// Throttled: no attempt was made by this try; the subscription's limits (or a 429's pause)
	// say wait Wait, then try again with Reservation, if one was made. Attempt is then the last
	// attempt number the series used before this try (the workflow's count may not know of them:
	// Temporal retried inside the activity), so the next series numbers on from it.
	Throttled   bool                  `json:",omitempty"`
	Wait        time.Duration         `json:",omitempty"`
	Reservation *delivery.Reservation `json:",omitempty"`
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
