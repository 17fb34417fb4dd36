// Package activities holds every side effect of a delivery: database, HTTP and SMTP. Workflows
// call them through an *Activities value that carries the dependencies.
package activities

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"regexp"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/filter"
	"github.com/hookd/hookd/metrics"
	"github.com/hookd/hookd/webhook"
)

// Mailer sends one e-mail.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Activities carries what the activities need. One value is registered with the worker.
type Activities struct {
	Repo    *db.Repo
	Sender  *webhook.Sender
	Mail    Mailer
	Config  config.Config
	Log     *slog.Logger
	Metrics *metrics.Metrics // nil disables metrics
	Retries RetryStarter
	// Events starts the workflows of operational webhooks.
	Events EventStarter
	// Replays starts the workflows of a recover's replays.
	Replays ReplayStarter
	// HistoryRetention is how long Temporal keeps a closed workflow's history (0: unknown), for
	// e-mails that say until when their link works.
	HistoryRetention time.Duration
}

// sendTarget is how to deliver to one target: the secrets to sign with, the callback key, the
// registered event's API path and the retry policy.
type sendTarget struct {
	Secrets     []string
	CallbackKey string
	APIPath     string
	Policy      delivery.Policy
	sub         db.Subscription // the subscription (zero for a one-off callback): its limits and pace
}

// inactiveReason is why a delivery to a subscription that is no longer active ends.
func inactiveReason(sub db.Subscription) string {
	switch {
	case sub.DeletedAt.Valid:
		return "subscription deleted"
	case sub.DisabledReason != "":
		return "subscription disabled: " + sub.DisabledReason
	}
	return "subscription disabled"
}

func subscriptionTarget(c config.Config, sub db.Subscription, apiPath string) sendTarget {
	return sendTarget{Secrets: sub.Secrets(time.Now()), CallbackKey: sub.CallbackKey.String, APIPath: apiPath,
		Policy: delivery.PolicyFor(c, sub.RetryPolicy), sub: sub}
}

// matches evaluates the registered event's filter and then the subscription's own.
func matches(t db.Target, ev db.Event) (bool, string) {
	filters := [][]byte{t.EventFilter}
	if t.FilterLogic.Valid {
		filters = append(filters, t.FilterLogic.JSONText)
	}
	for _, raw := range filters {
		if len(raw) == 0 {
			continue
		}
		f, err := filter.Compile(raw)
		if err != nil {
			return false, "invalid filter: " + err.Error()
		}
		ok, err := f.Match(ev.Type, ev.Topic, json.RawMessage(ev.Payload))
		if err != nil {
			return false, err.Error()
		}
		if !ok {
			return false, "filter did not match"
		}
	}
	return true, ""
}

var pathParam = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

func nullString(s string) (n sql.NullString) {
	n.String, n.Valid = s, s != ""
	return n
}

// heartbeat reports liveness until stopped, so a crashed worker's fan-out is retried quickly
// while a slow but healthy one is left alone.
func heartbeat(ctx context.Context, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}
