package delivery

import "time"

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

// Reservation is a reserved send slot of a throttled subscription: its time and, under
// maxInFlight, its lease.
type Reservation struct {
	At    time.Time
	Lease string `json:",omitempty"`
}

// ReplayStart is a replay to start: a new attempt series of a finished delivery.
type ReplayStart struct {
	Retry
	EventID   string
	EventType string
	Topic     string
	Replay    int
}
