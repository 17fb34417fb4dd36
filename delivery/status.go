package delivery

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// The states a recover or replay operation ends in (its row in PostgreSQL and its workflow's
// result say the same).
const (
	OperationCompleted = "completed"
	OperationCancelled = "cancelled"
)

// The signals a delivery's workflow accepts: retry now (cutting its backoff short), or end as
// cancelled. Both take an optional JSON payload {"reason": "..."}.
const (
	SignalCancel = "cancel"
	SignalRetry  = "retry"
)
