package usecase

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/schema"
	"github.com/hookd/hookd/tracing"
)

// TestSendsPerMinute is how many test sends a subscription may be sent in a minute.
const TestSendsPerMinute = 10

// SchemaViolations is data that does not match a registered event's schema (the cause of an
// Unprocessable *Error).
type SchemaViolations struct {
	Topic, EventName string
	Violations       []schema.Violation
}

func (v *SchemaViolations) Error() string {
	return fmt.Sprintf("data does not match the schema of event %q (topic %q)", v.EventName, v.Topic)
}

// TestSend is a test delivery made.
type TestSend struct {
	Event        db.Event    // the test event (kind test), under its client id
	Delivery     db.Delivery // its one delivery, to the subscription
	Subscription db.Subscription
}

// SendTest sends one of the caller's subscriptions a test: the event type's first example, or
// data (checked against the type's schema), as a real signed delivery marked test (in the
// payload and the ledger) with the subscription's retries. eventType may be "" when the
// subscription receives one type.
func (s *Service) SendTest(ctx context.Context, c Caller, subscriptionID, eventType string, data json.RawMessage) (TestSend, error) {
	if err := c.mayChange(); err != nil {
		return TestSend{}, err
	}
	sub, err := s.GetSubscription(ctx, c, subscriptionID)
	if err != nil {
		return TestSend{}, err
	}
	if !sub.Active {
		return TestSend{}, conflict("the subscription is disabled: enable it first")
	}
	if eventType == "" && len(sub.EventTypes) == 1 && sub.EventTypes[0] != "*" {
		eventType = sub.EventTypes[0]
	}
	if !NamePattern.MatchString(eventType) {
		return TestSend{}, invalid("eventType", nameRule)
	}
	if !slices.Contains(sub.EventTypes, eventType) && !slices.Contains(sub.EventTypes, "*") {
		return TestSend{}, invalid("eventType", "the subscription does not receive %q (it receives %v)", eventType, []string(sub.EventTypes))
	}
	var re db.RegisteredEvent
	if sub.RegisteredEventID.Valid {
		re, err = s.Repo.RegisteredEventByID(ctx, sub.RegisteredEventID.Int64)
	} else {
		re, err = s.Repo.RegisteredEventOfType(ctx, sub.PublisherAppID, eventType)
	}
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return TestSend{}, err
	}
	payload, err := s.testPayload(eventType, data, re)
	if err != nil {
		return TestSend{}, err
	}
	clientID := "test_" + uuid.NewString()
	key := delivery.EventKey(c.App.ID, clientID)
	tp := tracing.TraceParent(ctx)
	ev := db.Event{ID: key, ClientID: clientID, AppID: c.App.ID, Topic: re.Topic, Type: eventType, Payload: payload,
		WorkflowID: delivery.EventWorkflowID(key), Kind: db.KindTest, TraceParent: sql.NullString{String: tp, Valid: tp != ""}}
	d := db.Delivery{ID: delivery.DeliveryID(key, sub.ID, 0), SubscriptionID: sql.NullString{String: sub.ID, Valid: true},
		AppID: sub.AppID, URL: sub.URL, WorkflowID: delivery.DeliveryWorkflowID(key, sub.ID, 0)}
	stored, got, err := s.Repo.InsertTestSend(ctx, ev, d, TestSendsPerMinute)
	var rl *db.RateLimitError
	if errors.As(err, &rl) {
		return TestSend{}, &Error{Kind: RateLimited, RetryAfter: rl.RetryAfter, Err: err,
			Reason: fmt.Sprintf("at most %d test sends per subscription and minute", TestSendsPerMinute)}
	}
	if err != nil {
		return TestSend{}, err
	}
	if err := s.Dispatch(ctx, stored); err != nil {
		// Stored: the reconciler starts it.
		s.Log.Warn("test send left to the reconciler", "event_id", stored.ID, "error", err)
	}
	return TestSend{Event: stored, Delivery: got, Subscription: sub}, nil
}

// testPayload is the data of a test send: data (checked against the registered event's schema),
// else the registered event's first example.
func (s *Service) testPayload(eventType string, data json.RawMessage, re db.RegisteredEvent) (types.JSONText, error) {
	if len(data) == 0 || string(data) == "null" {
		var examples []json.RawMessage
		if re.Examples.Valid {
			_ = json.Unmarshal(re.Examples.JSONText, &examples)
		}
		if len(examples) == 0 {
			return nil, invalid("data", "event type %q has no registered example; give data", eventType)
		}
		return types.JSONText(examples[0]), nil
	}
	if int64(len(data)) > s.Config.MaxPayloadBytes {
		return nil, &Error{Kind: TooLarge, Field: "data", Reason: fmt.Sprintf("larger than %d bytes", s.Config.MaxPayloadBytes)}
	}
	if re.Schema.Valid {
		if sch, err := schema.Compile(re.Schema.JSONText); err == nil {
			v, err := sch.Validate(data)
			if err != nil {
				return nil, &Error{Kind: Invalid, Field: "data", Reason: err.Error(), Err: err}
			}
			if len(v) > 0 {
				sv := &SchemaViolations{Topic: re.Topic, EventName: re.Name, Violations: v}
				return nil, &Error{Kind: Unprocessable, Reason: sv.Error(), Err: sv}
			}
		}
	}
	return types.JSONText(data), nil
}
