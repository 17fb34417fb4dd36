// Package activities holds every side effect of a delivery: database, HTTP and SMTP. Workflows
// call them through an *Activities value that carries the dependencies.
package activities

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

// sendTarget is how to deliver to one target: where (a subscription's current URL, read when the
// attempt is made, so a PATCH moves the next attempt), the secrets to sign with, the callback key,
// the registered event's API path and the retry policy.
type sendTarget struct {
	URL         string
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
	return sendTarget{URL: sub.URL, Secrets: sub.Secrets(time.Now()), CallbackKey: sub.CallbackKey.String, APIPath: apiPath,
		Policy: delivery.PolicyFor(c, sub.RetryPolicy), sub: sub}
}

// filterRun evaluates the filters of one fan-out page on its event. The event's data is parsed
// once for the page and a filter's text compiled once (a registered event's filter is shared by
// all its subscribers). Each evaluation has filter.Budget steps; and all the filters of one
// subscriber app together get appFilterBudget on a page, so an app with many expensive filters
// delays the others by at most that much per page, whatever their number.
type filterRun struct {
	ev       filter.Event
	compiled map[string]compiledRule
	spent    map[string]int // steps per subscriber app
	failures []db.FilterFailure
}

type compiledRule struct {
	f   filter.Filter
	err error
}

// appFilterBudget is what the filters of one subscriber app may spend on one fan-out page:
// five filters that spend their whole budget, at most about 30 ms of CPU (see filter.Budget).
const appFilterBudget = 5 * filter.Budget

func newFilterRun(ev db.Event) *filterRun {
	return &filterRun{ev: filter.Event{Type: ev.Type, Topic: ev.Topic, Data: json.RawMessage(ev.Payload)},
		compiled: map[string]compiledRule{}, spent: map[string]int{}}
}

// matches evaluates the registered event's filter and then the subscription's own. A filter
// that fails (spends its budget, does not fit the data, or was stored unreadable) counts as no
// match, and its failure is kept for the subscription (failures).
func (r *filterRun) matches(t db.Target) (bool, string) {
	filters := []struct {
		raw   []byte
		whose string
	}{{t.EventFilter, "the registered event's filter"}}
	if t.FilterLogic.Valid {
		filters = append(filters, struct {
			raw   []byte
			whose string
		}{t.FilterLogic.JSONText, "filter"})
	}
	for _, x := range filters {
		if len(x.raw) == 0 {
			continue
		}
		ok, err := r.match(t.AppID, x.raw)
		if err != nil {
			why := x.whose + " failed, counted as no match: " + err.Error()
			if !t.FilterErrorAt.Valid || time.Since(t.FilterErrorAt.Time) >= db.FilterErrorEvery {
				r.failures = append(r.failures, db.FilterFailure{SubscriptionID: t.ID, Reason: why})
			}
			return false, why
		}
		if !ok {
			return false, "filter did not match"
		}
	}
	return true, ""
}

func (r *filterRun) match(app string, raw []byte) (bool, error) {
	c, seen := r.compiled[string(raw)]
	if !seen {
		// Parse, not Compile: a rule stored before today's registration limits still runs,
		// within the budget.
		c.f, c.err = filter.Parse(raw)
		r.compiled[string(raw)] = c
	}
	if c.err != nil {
		return false, fmt.Errorf("invalid filter: %w", c.err)
	}
	left := appFilterBudget - r.spent[app]
	if left <= 0 {
		return false, fmt.Errorf("%w: this app's filters spent their budget for the event (%d steps)", filter.ErrBudget, appFilterBudget)
	}
	ok, spent, err := c.f.MatchWithin(&r.ev, min(left, filter.Budget))
	r.spent[app] += spent
	return ok, err
}

// recordFilterFailures writes a page's filter failures on their subscriptions. Best effort: the
// failure is already counted as no match, and the next failure writes it again.
func (a *Activities) recordFilterFailures(ctx context.Context, ev db.Event, r *filterRun) {
	if len(r.failures) == 0 {
		return
	}
	if err := a.Repo.RecordFilterErrors(ctx, r.failures); err != nil {
		a.Log.Warn("filter failures not recorded", "event_id", ev.ID, "count", len(r.failures), "error", err)
		return
	}
	// Logged when written: at most once a minute per subscription, not once per event.
	for _, f := range r.failures {
		a.Log.Info("filter failed; counted as no match", "event_id", ev.ID, "subscription_id", f.SubscriptionID, "reason", f.Reason)
	}
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
