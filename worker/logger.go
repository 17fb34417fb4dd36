package worker

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/activities"
)

// workflowTaskTimeout is the workflow task timeout of hookd's workflows (the server's default:
// none sets its own).
const workflowTaskTimeout = 10 * time.Second

// outcomeTypes are the failures of an activity that report what a receiver did (or that the
// delivery had already ended): the product working, recorded in the ledger and the metrics, and
// retried by the server as designed. hookd's own trouble (the database, Temporal, a bug) reaches
// the SDK as other errors, or as one of these with a cause attached, and stays an ERROR.
var outcomeTypes = map[string]bool{
	activities.ErrTypeFailed:    true, // non-2xx, timeout or transport error: retried
	activities.ErrTypeGone:      true, // 410: the subscription is disabled
	activities.ErrTypeExhausted: true, // the last attempt failed: the contact is told
	activities.ErrTypeThrottled: true, // the subscription's limits say wait
	activities.ErrTypeInactive:  true, // disabled meanwhile
	activities.ErrTypeFinished:  true, // closed by another attempt
}

// SDKLogger is the Temporal SDK's logger over log, with the SDK's levels corrected where they would
// page an operator for the product working:
//
//   - "Activity error." is logged by the SDK at ERROR for every failed activity, so every receiver
//     answering 500 was an ERROR line. A failure whose ApplicationError type is a delivery outcome
//     (outcomeTypes) and that has no cause is logged at DEBUG instead. The error itself, the
//     retries and the activity failure metrics are unchanged.
//   - "[TMPRL1104] ... Workflow task duration exceeded 5 seconds." is logged at WARN when a
//     workflow task runs longer than 5 s. A fan-out page runs as a local activity inside the
//     workflow task; while it runs, the SDK itself heartbeats the task every 8 s (80% of the
//     task timeout), and each heartbeat trips the warning. Below the task timeout the warning
//     is logged at INFO; a task that outlived its timeout (which the server retries) still warns.
func SDKLogger(log *slog.Logger) tlog.Logger {
	// One more frame (this wrapper) between the SDK's call and the record's source.
	return sdkLogger{tlog.Skip(tlog.NewStructuredLogger(log), 1)}
}

type sdkLogger struct{ tlog.Logger }

func (l sdkLogger) Error(msg string, keyvals ...any) {
	if msg == "Activity error." && deliveryOutcome(keyvals) {
		l.Logger.Debug(msg, keyvals...)
		return
	}
	l.Logger.Error(msg, keyvals...)
}

func (l sdkLogger) Warn(msg string, keyvals ...any) {
	if strings.HasPrefix(msg, "[TMPRL1104]") {
		if d, ok := value(keyvals, "WorkflowTaskDuration").(time.Duration); ok && d < workflowTaskTimeout {
			l.Logger.Info(msg, keyvals...)
			return
		}
	}
	l.Logger.Warn(msg, keyvals...)
}

// With keeps the corrections on loggers the SDK derives (it tags one per worker and activity).
func (l sdkLogger) With(keyvals ...any) tlog.Logger {
	return sdkLogger{tlog.With(l.Logger, keyvals...)}
}

// WithCallerSkip keeps the record's source pointing at the SDK's caller.
func (l sdkLogger) WithCallerSkip(depth int) tlog.Logger {
	return sdkLogger{tlog.Skip(l.Logger, depth)}
}

// deliveryOutcome reports whether the "Error" of an activity failure is a delivery outcome.
func deliveryOutcome(keyvals []any) bool {
	err, ok := value(keyvals, "Error").(error)
	if !ok {
		return false
	}
	var app *temporal.ApplicationError
	return errors.As(err, &app) && outcomeTypes[app.Type()] && app.Unwrap() == nil
}

// value returns the value of key in SDK-style alternating keys and values, or nil.
func value(keyvals []any, key string) any {
	for i := 0; i+1 < len(keyvals); i += 2 {
		if k, ok := keyvals[i].(string); ok && k == key {
			return keyvals[i+1]
		}
	}
	return nil
}
