// Package usecase holds what hookd does for a caller, whichever door the caller came through:
// the REST API (package api) and the subscriber portal call the same functions. A use case takes
// the authenticated caller and plain inputs, checks them, reads and writes through db, starts and
// signals workflows through engine, and returns domain values or an *Error saying what kind of
// refusal it is (Invalid with the field, NotFound, Forbidden, Conflict, RateLimited, ...). It
// knows nothing of HTTP: each door parses its own input and renders its own answer.
//
// Only logic that both doors share lives here; what is one door's alone (the API's idempotency
// keys, a portal session's cookie) stays with that door.
package usecase

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/filter"
	"github.com/hookd/hookd/metrics"
	"github.com/hookd/hookd/webhook"
)

// Service runs the use cases. Its fields are set once, before the first call.
type Service struct {
	Repo    *db.Repo
	Engine  *engine.Gateway
	Config  config.Config
	Guard   *webhook.Guard // checks every URL hookd will POST to
	Log     *slog.Logger
	Metrics *metrics.Metrics // nil: not counted
	// Dispatch hands a stored event to whatever starts its workflow (the outbox, or a start
	// before answering); an event it cannot take is stored all the same and the reconciler
	// starts it.
	Dispatch func(ctx context.Context, ev db.Event) error
}

// Caller is who asks: an app, through one of its API keys or a portal session.
type Caller struct {
	App db.App
	// Subscriptions narrows the caller to these subscriptions of its app and their deliveries
	// (nil: all of them); a portal session opened for some subscriptions only. Anything else
	// answers NotFound, as another app's would.
	Subscriptions []string
	// ReadOnly refuses every change (Forbidden).
	ReadOnly bool
	// Actor names who acted in the operational webhooks a change sends ("owner" when empty).
	Actor string
}

// AppCaller is the caller of an app's API key: all of the app, read and write.
func AppCaller(app db.App) Caller { return Caller{App: app} }

func (c Caller) scope() db.Scope { return db.OwnedBy(c.App.ID) }

// sees tells whether the caller's narrowing lets it see the subscription.
func (c Caller) sees(subscriptionID string) bool {
	return c.Subscriptions == nil || slices.Contains(c.Subscriptions, subscriptionID)
}

// mayChange refuses a read-only caller.
func (c Caller) mayChange() error {
	if c.ReadOnly {
		return forbidden("this session is read-only")
	}
	return nil
}

func (c Caller) actor() string {
	if c.Actor == "" {
		return "owner"
	}
	return c.Actor
}

// NamePattern is what an event type, an event name and an event id may be.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// nameRule is NamePattern in words.
const nameRule = "1 to 128 letters, digits, '_', '.', ':' or '-'"

// ValidEmail is a loose check of an e-mail address: something@something, no spaces or lists.
func ValidEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && len(s) <= 254 && !strings.ContainsAny(s, " \r\n<>,")
}

// CompiledFilter checks a JSON Logic filter against the registration limits and returns its stored
// form (null: none). The error is a *filter.Error naming the limit and the path.
func CompiledFilter(raw json.RawMessage) (types.NullJSONText, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return types.NullJSONText{}, nil
	}
	if _, err := filter.Compile(raw); err != nil {
		return types.NullJSONText{}, err
	}
	return types.NullJSONText{JSONText: types.JSONText(raw), Valid: true}, nil
}

// CheckTarget checks a URL hookd will POST to (the SSRF guard); field names it in the refusal.
func (s *Service) CheckTarget(ctx context.Context, field, url string) error {
	if url == "" {
		return invalid(field, "required")
	}
	if err := s.Guard.CheckURL(ctx, url); err != nil {
		return &Error{Kind: Invalid, Field: field, Reason: err.Error(), Err: err}
	}
	return nil
}
