package usecase

import (
	"context"
	"database/sql"

	"github.com/google/uuid"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/tracing"
)

// StartCallback stores a one-off callback of the caller's to url and dispatches its workflow:
// the same signing (with the app's secret), retries, ledger and failure e-mail as a
// subscription's deliveries. The stored event's ClientID is the request id the caller gets. url
// is checked by the caller (CheckTarget) before anything it reports is done.
func (s *Service) StartCallback(ctx context.Context, c Caller, url, eventType, service string, payload any) (db.Event, error) {
	ev, err := callbacks.Callback{ID: "req_" + uuid.NewString(), AppID: c.App.ID, URL: url,
		EventType: eventType, Service: service, Data: payload}.Event()
	if err != nil {
		return db.Event{}, err
	}
	tp := tracing.TraceParent(ctx)
	ev.TraceParent = sql.NullString{String: tp, Valid: tp != ""}
	if _, _, err := s.Repo.InsertEvent(ctx, ev); err != nil {
		return db.Event{}, err
	}
	if err := s.Dispatch(ctx, ev); err != nil {
		return db.Event{}, err
	}
	s.Metrics.AcceptedEvent(db.KindCallback)
	return ev, nil
}
