package db

import (
	"database/sql"
	"encoding/json"
	"time"

	"github.com/hookd/hookd/delivery"
	"github.com/jmoiron/sqlx/types"
	"github.com/lib/pq"
)

var errSQLNoRows = sql.ErrNoRows

// App is a publisher and/or subscriber with its own API key.
type App struct {
	ID           string         `db:"id" json:"id"`
	Name         string         `db:"name" json:"name"`
	Permissions  pq.StringArray `db:"permissions" json:"permissions"`
	Secret       string         `db:"secret" json:"-"`
	ContactEmail string         `db:"contact_email" json:"contactEmail,omitempty"`
	// OperationsURL receives the app's operational webhooks ("" for none).
	OperationsURL string    `db:"operations_url" json:"operationsUrl,omitempty"`
	CreatedAt     time.Time `db:"created_at" json:"createdAt"`
}

// RegisteredEvent is an event a publisher app declares on a topic (OS1 registerEvents).
type RegisteredEvent struct {
	ID          int64              `db:"id" json:"-"`
	AppID       string             `db:"app_id" json:"appId"`
	Topic       string             `db:"topic" json:"topic"`
	Name        string             `db:"name" json:"name"`
	Description string             `db:"description" json:"description"`
	EventType   string             `db:"event_type" json:"eventType"`
	FilterLogic types.NullJSONText `db:"filter_logic" json:"filterLogic,omitempty"`
	Type        string             `db:"type" json:"type"`
	GetAPIPath  string             `db:"get_api_path" json:"getApiPath"`
	// Schema is the JSON Schema of the event's data (NULL: anything goes), Examples a JSON array
	// of payloads valid against it (see the event catalog).
	Schema          types.NullJSONText `db:"schema" json:"schema,omitempty"`
	Examples        types.NullJSONText `db:"examples" json:"examples,omitempty"`
	Deprecated      bool               `db:"deprecated" json:"deprecated"`
	DeprecationNote string             `db:"deprecation_note" json:"deprecationNote,omitempty"`
	CreatedAt       time.Time          `db:"created_at" json:"createdAt"`
	UpdatedAt       time.Time          `db:"updated_at" json:"updatedAt"`
}

// RetryPolicy is a subscription's own retry schedule (stored in its row).
type RetryPolicy = delivery.RetryPolicy

// Throttle is how fast hookd may deliver to a subscription: at most RateLimit deliveries per
// second and MaxInFlight at once (NULL: no limit), and not before PausedUntil, which a 429 sets.
type Throttle struct {
	RateLimit   sql.NullFloat64 `db:"rate_limit" json:"-"`
	MaxInFlight sql.NullInt32   `db:"max_in_flight" json:"-"`
	PausedUntil sql.NullTime    `db:"paused_until" json:"-"`
	PauseMS     int             `db:"pause_ms" json:"-"`
}

// Throttled reports whether sends to the subscription must go through AcquireSlot at now.
func (t Throttle) Throttled(now time.Time) bool {
	return t.RateLimit.Valid || t.MaxInFlight.Valid || (t.PausedUntil.Valid && t.PausedUntil.Time.After(now))
}

// Subscription is a callback URL that receives events. Secrets never leave the repository
// except for signing; JSON omits them.
type Subscription struct {
	ID                  string             `db:"id" json:"id"`
	AppID               string             `db:"app_id" json:"appId"`
	PublisherAppID      string             `db:"publisher_app_id" json:"publisherAppId"`
	RegisteredEventID   sql.NullInt64      `db:"registered_event_id" json:"-"`
	URL                 string             `db:"url" json:"url"`
	Secret              string             `db:"secret" json:"-"`
	PreviousSecret      sql.NullString     `db:"previous_secret" json:"-"`
	PreviousSecretUntil sql.NullTime       `db:"previous_secret_until" json:"-"`
	CallbackKey         sql.NullString     `db:"callback_key" json:"-"`
	EventTypes          pq.StringArray     `db:"event_types" json:"eventTypes"`
	FilterLogic         types.NullJSONText `db:"filter_logic" json:"filterLogic,omitempty"`
	ContactEmail        string             `db:"contact_email" json:"contactEmail"`
	Active              bool               `db:"active" json:"active"`
	DisabledReason      string             `db:"disabled_reason" json:"disabledReason,omitempty"`
	ConsecutiveFailures int                `db:"consecutive_failures" json:"consecutiveFailures"`
	RetryPolicy
	Throttle
	CreatedAt time.Time    `db:"created_at" json:"createdAt"`
	UpdatedAt time.Time    `db:"updated_at" json:"updatedAt"`
	DeletedAt sql.NullTime `db:"deleted_at" json:"-"`
	// FilterError is why the filter last failed at run time (when FilterErrorAt); "" if it has
	// not since it was set.
	FilterError   string       `db:"filter_error" json:"-"`
	FilterErrorAt sql.NullTime `db:"filter_error_at" json:"-"`
}

// Event is one published event.
type Event struct {
	Seq          int64          `db:"seq" json:"-"`
	ID           string         `db:"id" json:"id"`
	AppID        string         `db:"app_id" json:"appId"`
	Topic        string         `db:"topic" json:"topic,omitempty"`
	Type         string         `db:"type" json:"type"`
	Payload      types.JSONText `db:"payload" json:"data"`
	WorkflowID   string         `db:"workflow_id" json:"workflowId"`
	ReceivedAt   time.Time      `db:"received_at" json:"receivedAt"`
	DispatchedAt sql.NullTime   `db:"dispatched_at" json:"-"`
	ClientID     string         `db:"client_id" json:"-"` // the publisher's own id; ID is the internal key
	Kind         string         `db:"kind" json:"kind"`
	TargetURL    sql.NullString `db:"target_url" json:"-"`
	NotifyURL    sql.NullString `db:"notify_url" json:"-"`
	TxID         string         `db:"txid" json:"-"`
	// TraceParent is the W3C traceparent of the publish that stored the event, so the workflow
	// started later (by the outbox or the reconciler) joins the publisher's trace.
	TraceParent sql.NullString `db:"trace_parent" json:"-"`
}

// Event kinds.
const (
	KindEvent    = "event"
	KindCallback = "callback"
	// KindTest is a test send: one delivery, made when the event is stored, to one subscription.
	KindTest = "test"
)

// Attempt states: a ledger row is written before its POST and completed after it.
const (
	AttemptSending     = "sending"
	AttemptCompleted   = "completed"
	AttemptInterrupted = "interrupted"
)

// InterruptedReason is the error of an attempt whose worker stopped before recording its outcome.
const InterruptedReason = "interrupted: the worker stopped during this attempt; the receiver may or may not have got it"

// Delivery is one event sent to one target (a subscription, or a one-off callback URL).
type Delivery struct {
	ID             string         `db:"id" json:"id"`
	EventID        string         `db:"event_id" json:"eventId"`
	SubscriptionID sql.NullString `db:"subscription_id" json:"-"`
	AppID          string         `db:"app_id" json:"-"`
	URL            string         `db:"url" json:"url"`
	Replay         int            `db:"replay" json:"replay"`
	Status         string         `db:"status" json:"status"`
	Attempts       int            `db:"attempts" json:"attempts"`
	LastStatus     sql.NullInt32  `db:"last_status" json:"-"`
	LastError      string         `db:"last_error" json:"lastError,omitempty"`
	WorkflowID     string         `db:"workflow_id" json:"workflowId,omitempty"`
	NotifiedAt     sql.NullTime   `db:"notified_at" json:"-"`
	CreatedAt      time.Time      `db:"created_at" json:"createdAt"`
	UpdatedAt      time.Time      `db:"updated_at" json:"updatedAt"`
	FinishedAt     sql.NullTime   `db:"finished_at" json:"-"`
	// GroupID is the workflow waiting for this delivery to end, if any.
	GroupID sql.NullString `db:"group_id" json:"-"`
	// Test marks the delivery of a test send (POST /v1/subscriptions/{id}/test).
	Test bool `db:"test" json:"test,omitempty"`
}

// MarshalJSON flattens the nullable columns.
func (d Delivery) MarshalJSON() ([]byte, error) {
	type plain Delivery
	out := struct {
		plain
		EventID        string     `json:"eventId"` // as its publisher knows it
		SubscriptionID *string    `json:"subscriptionId,omitempty"`
		LastStatus     *int32     `json:"lastStatus,omitempty"`
		FinishedAt     *time.Time `json:"finishedAt,omitempty"`
	}{plain: plain(d), EventID: delivery.ClientEventID(d.EventID)}
	if d.SubscriptionID.Valid {
		out.SubscriptionID = &d.SubscriptionID.String
	}
	if d.LastStatus.Valid {
		out.LastStatus = &d.LastStatus.Int32
	}
	if d.FinishedAt.Valid {
		out.FinishedAt = &d.FinishedAt.Time
	}
	return json.Marshal(out)
}

// Attempt is one HTTP attempt in the ledger.
type Attempt struct {
	DeliveryID      string             `db:"delivery_id" json:"-"`
	Attempt         int                `db:"attempt" json:"attempt"`
	RequestHeaders  types.JSONText     `db:"request_headers" json:"requestHeaders"`
	ResponseStatus  sql.NullInt32      `db:"response_status" json:"-"`
	ResponseHeaders types.NullJSONText `db:"response_headers" json:"responseHeaders,omitempty"`
	ResponseBody    string             `db:"response_body" json:"responseBody,omitempty"`
	Error           string             `db:"error" json:"error,omitempty"`
	DurationMS      int64              `db:"duration_ms" json:"durationMs"`
	StartedAt       time.Time          `db:"started_at" json:"startedAt"`
	// State is AttemptSending until the attempt's outcome is recorded, AttemptInterrupted when the
	// worker stopped before it could be.
	State string `db:"state" json:"state"`
	// URL is where the attempt went, as scheme://host/path (LedgerURL); URLQueryHash tells its
	// query string apart without storing it. Written with the claim, before the POST; NULL for
	// rows from before they existed.
	URL          sql.NullString `db:"url" json:"-"`
	URLQueryHash sql.NullString `db:"url_query_hash" json:"-"`
	// Succeeded is how the attempt ended (2xx), for recording; not a column.
	Succeeded bool `db:"-" json:"-"`
}

// MarshalJSON flattens the nullable status.
func (a Attempt) MarshalJSON() ([]byte, error) {
	type plain Attempt
	out := struct {
		plain
		ResponseStatus *int32 `json:"responseStatus,omitempty"`
		URL            string `json:"url,omitempty"`
		URLQueryHash   string `json:"urlQueryHash,omitempty"`
	}{plain: plain(a), URL: a.URL.String, URLQueryHash: a.URLQueryHash.String}
	if a.ResponseStatus.Valid {
		out.ResponseStatus = &a.ResponseStatus.Int32
	}
	return json.Marshal(out)
}

// MarshalJSON leaves filterLogic and schema out when the event has none; examples is [] then.
func (e RegisteredEvent) MarshalJSON() ([]byte, error) {
	type plain RegisteredEvent
	out := struct {
		plain
		FilterLogic json.RawMessage `json:"filterLogic,omitempty"`
		Schema      json.RawMessage `json:"schema,omitempty"`
		Examples    json.RawMessage `json:"examples"`
	}{plain: plain(e), Examples: json.RawMessage("[]")}
	if e.FilterLogic.Valid {
		out.FilterLogic = json.RawMessage(e.FilterLogic.JSONText)
	}
	if e.Schema.Valid {
		out.Schema = json.RawMessage(e.Schema.JSONText)
	}
	if e.Examples.Valid {
		out.Examples = json.RawMessage(e.Examples.JSONText)
	}
	return json.Marshal(out)
}
