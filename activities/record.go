package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/webhook"
)

// The outcome of a POST that was answered is known, and must stay known: recording it is retried
// while the database is away (a restart takes seconds), and if the activity's time runs out
// first, the outcome travels to the activity's next try in its heartbeat details (kept by the
// Temporal server, whichever worker runs that try), which records it before anything else. Only
// an attempt whose worker stopped mid-POST has an unknown outcome (interrupted).

const (
	// recordFirstWait and recordMaxWait are the backoff between tries of a ledger write.
	recordFirstWait = 100 * time.Millisecond
	recordMaxWait   = 2 * time.Second
	// recordTry bounds one try: a database that hangs (SIGSTOP, a network partition) instead of
	// refusing must not eat the whole budget in one statement.
	recordTry = 10 * time.Second
	// carryMaxBytes bounds the heartbeat details that carry unrecorded outcomes (Temporal warns
	// at 512 KiB); above it the rows travel without what the receiver sent.
	carryMaxBytes = 256 << 10
)

// record writes completed attempts, retrying with backoff for as long as ctx allows, less a
// margin (a tenth of what is left, at most 5 s) for the caller to report.
func (a *Activities) record(ctx context.Context, rows []db.Attempt) error {
	if len(rows) == 0 {
		return nil
	}
	until := time.Now().Add(time.Minute)
	if dl, ok := ctx.Deadline(); ok {
		until = dl.Add(-min(5*time.Second, time.Until(dl)/10))
	}
	wait := recordFirstWait
	started := time.Now()
	for try := 1; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, min(recordTry, max(time.Until(until), time.Millisecond)))
		stripped, err := a.Repo.RecordAttempts(tctx, rows, "")
		cancel()
		if err == nil {
			for _, s := range stripped {
				a.Log.Warn("ledger row refused by the database; recorded without the receiver's answer",
					"delivery_id", s.DeliveryID, "attempt", s.Attempt, "error", s.Err)
			}
			if try > 1 {
				a.Log.Info("attempt outcomes recorded once the database answered", "rows", len(rows), "tries", try,
					"waited", time.Since(started).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(until) {
			return &unrecordedError{rows: rows, err: err}
		}
		select {
		case <-ctx.Done():
			return &unrecordedError{rows: rows, err: err}
		case <-time.After(wait):
		}
		wait = min(2*wait, recordMaxWait)
	}
}

// unrecordedError is a write of known outcomes that did not succeed in time.
type unrecordedError struct {
	rows []db.Attempt
	err  error
}

func (e *unrecordedError) Error() string {
	return fmt.Sprintf("%d attempt outcomes not recorded: database unavailable: %v", len(e.rows), e.err)
}

func (e *unrecordedError) Unwrap() error { return e.err }

// carried is what an activity's try could not record, for its next try.
type carried struct {
	Rows []carriedRow
	Why  string
}

// carriedRow is a db.Attempt whole (its JSON form, for the API, leaves fields out).
type carriedRow struct {
	DeliveryID      string
	Attempt         int
	RequestHeaders  json.RawMessage
	Status          int32 // 0: no answer
	ResponseHeaders json.RawMessage
	ResponseBody    string `json:",omitempty"`
	Error           string `json:",omitempty"`
	DurationMS      int64
	StartedAt       time.Time
	Succeeded       bool
}

func toCarried(rows []db.Attempt, withAnswer bool) []carriedRow {
	out := make([]carriedRow, len(rows))
	for i, r := range rows {
		c := carriedRow{DeliveryID: r.DeliveryID, Attempt: r.Attempt, RequestHeaders: json.RawMessage(r.RequestHeaders),
			Status: r.ResponseStatus.Int32, Error: r.Error, DurationMS: r.DurationMS, StartedAt: r.StartedAt, Succeeded: r.Succeeded}
		if withAnswer {
			c.ResponseBody = r.ResponseBody
			if r.ResponseHeaders.Valid {
				c.ResponseHeaders = json.RawMessage(r.ResponseHeaders.JSONText)
			}
		} else {
			c.ResponseBody = "[not kept: the database was unavailable]"
		}
		out[i] = c
	}
	return out
}

func fromCarried(rows []carriedRow) []db.Attempt {
	out := make([]db.Attempt, len(rows))
	for i, c := range rows {
		a := db.Attempt{DeliveryID: c.DeliveryID, Attempt: c.Attempt, RequestHeaders: types.JSONText(c.RequestHeaders),
			ResponseBody: c.ResponseBody, Error: c.Error, DurationMS: c.DurationMS, StartedAt: c.StartedAt, Succeeded: c.Succeeded}
		if len(a.RequestHeaders) == 0 {
			a.RequestHeaders = types.JSONText("{}")
		}
		if c.Status != 0 {
			a.ResponseStatus.Int32, a.ResponseStatus.Valid = c.Status, true
		}
		if len(c.ResponseHeaders) > 0 {
			a.ResponseHeaders.JSONText, a.ResponseHeaders.Valid = types.JSONText(c.ResponseHeaders), true
		}
		out[i] = a
	}
	return out
}

// carry hands err's rows, when it is an unrecordedError, to the activity's next try. Call it
// last: a later heartbeat would replace them.
func (a *Activities) carry(ctx context.Context, err error) {
	var u *unrecordedError
	if !errors.As(err, &u) || !activity.IsActivity(ctx) {
		return
	}
	c := carried{Rows: toCarried(u.rows, true), Why: u.err.Error()}
	if b, _ := json.Marshal(c); len(b) > carryMaxBytes {
		c.Rows = toCarried(u.rows, false)
	}
	a.Log.Warn("attempt outcomes handed to the activity's next try: the database is unavailable", "rows", len(c.Rows), "error", u.err)
	activity.RecordHeartbeat(ctx, c)
}

// recordCarried records the outcomes a previous try of this activity could not, and returns
// them. When it fails they are carried on again.
func (a *Activities) recordCarried(ctx context.Context) ([]db.Attempt, error) {
	if !activity.IsActivity(ctx) || !activity.HasHeartbeatDetails(ctx) {
		return nil, nil
	}
	var c carried
	if err := activity.GetHeartbeatDetails(ctx, &c); err != nil || len(c.Rows) == 0 {
		return nil, nil // details of another shape (a plain heartbeat): nothing carried
	}
	rows := fromCarried(c.Rows)
	if err := a.record(ctx, rows); err != nil {
		a.carry(ctx, err)
		return nil, err
	}
	a.Log.Info("recorded attempt outcomes a previous try could not", "rows", len(rows), "why", c.Why)
	return rows, nil
}

// carriedSuccess reports a successful attempt of d among the outcomes a previous try carried
// (and recordCarried recorded), as Attempt's result.
func (a *Activities) carriedSuccess(ctx context.Context, d db.Delivery, prev []db.Attempt) (AttemptResult, bool) {
	for _, r := range prev {
		if r.DeliveryID != d.ID || !r.Succeeded {
			continue
		}
		status := int(r.ResponseStatus.Int32)
		if ev, err := a.event(ctx, d.EventID); err == nil {
			a.Metrics.ObserveDelivered(delivery.StatusSucceeded, ev.ReceivedAt)
			a.recovered(ctx, ev, d, r.Attempt, webhook.Result{Status: status, StartedAt: r.StartedAt,
				Duration: time.Duration(r.DurationMS) * time.Millisecond})
		}
		a.groupEnded(ctx, d.ID)
		return AttemptResult{Attempt: r.Attempt, Status: status}, true
	}
	return AttemptResult{}, false
}
