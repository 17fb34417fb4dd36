package worker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/activities"
)

func TestSDKLoggerLevels(t *testing.T) {
	dbDown := fmt.Errorf("attempt d_1: %w", errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))
	cases := []struct {
		name  string
		log   func(tlog.Logger)
		level string
	}{
		{"receiver 500", func(l tlog.Logger) {
			l.Error("Activity error.", "ActivityType", "Attempt", "Error",
				temporal.NewApplicationErrorWithOptions("500 Internal Server Error", activities.ErrTypeFailed, temporal.ApplicationErrorOptions{NextRetryDelay: time.Second}))
		}, "DEBUG"},
		{"receiver gone", func(l tlog.Logger) {
			l.Error("Activity error.", "Error", temporal.NewNonRetryableApplicationError("410 Gone", activities.ErrTypeGone, nil, 410))
		}, "DEBUG"},
		{"attempts exhausted", func(l tlog.Logger) {
			l.Error("Activity error.", "Error", temporal.NewNonRetryableApplicationError("500", activities.ErrTypeExhausted, nil))
		}, "DEBUG"},
		{"throttled", func(l tlog.Logger) {
			l.Error("Activity error.", "Error", temporal.NewApplicationError("throttled", activities.ErrTypeThrottled))
		}, "DEBUG"},
		{"database down", func(l tlog.Logger) { l.Error("Activity error.", "ActivityType", "Attempt", "Error", dbDown) }, "ERROR"},
		{"outcome type with a cause (closing the delivery failed)", func(l tlog.Logger) {
			l.Error("Activity error.", "Error", temporal.NewNonRetryableApplicationError("500", activities.ErrTypeFailed, dbDown))
		}, "ERROR"},
		{"other application error", func(l tlog.Logger) {
			l.Error("Activity error.", "Error", temporal.NewNonRetryableApplicationError("delivery d_1 does not exist", activities.ErrTypeNotFound, nil))
		}, "ERROR"},
		{"other error message", func(l tlog.Logger) {
			l.Error("Failed to poll for task.", "Error", temporal.NewApplicationError("x", activities.ErrTypeFailed))
		}, "ERROR"},
		{"workflow task heartbeat of a long local activity", func(l tlog.Logger) {
			l.Warn("[TMPRL1104] r:5:1 Workflow task duration exceeded 5 seconds.", "WorkflowType", "EventWorkflowV2", "WorkflowTaskDuration", 8*time.Second+30*time.Millisecond)
		}, "INFO"},
		{"workflow task past its timeout", func(l tlog.Logger) {
			l.Warn("[TMPRL1104] r:5:1 Workflow task duration exceeded 5 seconds.", "WorkflowTaskDuration", 12*time.Second)
		}, "WARN"},
		{"other warning", func(l tlog.Logger) { l.Warn("Workflow task postprocess error") }, "WARN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			base := SDKLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true})))
			// As the SDK does: tags added per worker, and through a derived logger.
			l := tlog.With(base, "Namespace", "default", "TaskQueue", "q")
			c.log(l)
			line := out.String()
			if !strings.Contains(line, "level="+c.level+" ") {
				t.Errorf("logged %q, want level %s", line, c.level)
			}
			if !strings.Contains(line, "TaskQueue=q") {
				t.Errorf("lost the derived logger's tags: %q", line)
			}
			if !strings.Contains(line, "logger_test.go") {
				t.Errorf("the record's source is not the caller: %q", line)
			}
		})
	}
}
