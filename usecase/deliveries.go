package usecase

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/workflows"
)

// DeliveryQuery selects the caller's deliveries, newest first.
type DeliveryQuery struct {
	Status         string // "" or a delivery status
	SubscriptionID string
	Since          time.Time // zero: any time
	Page           string    // a cursor from the previous page ("": the first)
	Limit          int
}

// ListDeliveries reads a page of the caller's deliveries and the cursor of the next ("" on the
// last).
func (s *Service) ListDeliveries(ctx context.Context, c Caller, q DeliveryQuery) ([]db.Delivery, string, error) {
	f := db.DeliveryFilter{AppID: c.App.ID, Status: q.Status, SubscriptionID: q.SubscriptionID, Since: q.Since, Limit: q.Limit + 1}
	switch f.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed, delivery.StatusCancelled:
	default:
		return nil, "", invalid("status", "pending, succeeded, failed or cancelled")
	}
	if q.Page != "" {
		id, nanos, err := DecodeCursor(q.Page)
		if err != nil {
			return nil, "", invalid("page", "not a cursor returned by this endpoint")
		}
		f.AfterID, f.AfterCreated = id, time.Unix(0, nanos)
	}
	if c.Subscriptions != nil && f.SubscriptionID != "" && !c.sees(f.SubscriptionID) {
		return nil, "", nil
	}
	ds, err := s.Repo.ListDeliveries(ctx, f)
	if err != nil {
		return nil, "", err
	}
	ds, next := TrimPage(ds, q.Limit, func(d db.Delivery) string { return EncodeCursor(d.ID, d.CreatedAt.UnixNano()) })
	if c.Subscriptions != nil {
		ds = slicesFilter(ds, func(d db.Delivery) bool { return c.sees(d.SubscriptionID.String) })
	}
	return ds, next, nil
}

// DeliveryDetail is a delivery as the caller may see it, with its attempt ledger.
type DeliveryDetail struct {
	db.Delivery
	// Owner: the caller owns the delivery (it may see all of it); otherwise it published the
	// delivery's event and may see its progress only.
	Owner  bool
	Ledger []db.Attempt
	// OwnWorkflow: the delivery has (or had) a DeliveryWorkflow of its own; otherwise it ran
	// inside its event's workflow.
	OwnWorkflow bool
}

// GetDelivery reads a delivery the caller owns or whose event it published, with its ledger.
func (s *Service) GetDelivery(ctx context.Context, c Caller, id string) (DeliveryDetail, error) {
	d, err := s.visibleDelivery(ctx, c, id)
	if err != nil {
		return DeliveryDetail{}, err
	}
	atts, err := s.Repo.Attempts(ctx, d.ID)
	if err != nil {
		return DeliveryDetail{}, err
	}
	out := DeliveryDetail{Delivery: d, Owner: d.AppID == c.App.ID, Ledger: atts}
	own, sure := OwnWorkflow(d)
	out.OwnWorkflow = own
	if out.Owner && !sure {
		// The row cannot tell: ask Temporal whether the delivery's own workflow exists (within a
		// second; without an answer the row's best guess stands).
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		if st, err := s.Engine.Status(qctx, d.WorkflowID); err == nil {
			out.OwnWorkflow = st != enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
		}
		cancel()
	}
	return out, nil
}

// OwnWorkflow tells from a delivery's row whether it has (or had) a DeliveryWorkflow of its own,
// and whether the row alone can tell. Every replay has one, and so does an original whose first
// attempt, made by its event's fan-out, failed: it is retrying, or ended after retries, a 410 or a
// cancel. One whose first attempt succeeded never had one: it ran inside its event's workflow.
// The row cannot tell for one not attempted yet, or cancelled before its first attempt, or that
// succeeded at its first attempt: a throttled subscription's fan-out hands a delivery to its own
// workflow before any attempt (sure is false).
func OwnWorkflow(d db.Delivery) (own, sure bool) {
	switch {
	case d.Replay > 0:
		return true, true
	case d.Status == delivery.StatusSucceeded:
		return d.Attempts > 1, d.Attempts != 1
	case d.Attempts == 0 && d.Status != delivery.StatusFailed: // only a workflow fails a delivery
		return false, false
	case d.Status == delivery.StatusPending && d.Attempts == 1 && !d.LastStatus.Valid && d.LastError == "":
		// The first attempt is under way (its ledger row is written before the POST): in the
		// event's fan-out, or in a throttled delivery's own workflow.
		return false, false
	}
	return true, true // pending, failed or cancelled after an attempt
}

// visibleDelivery loads a delivery the caller may see: it owns it, or published its event.
func (s *Service) visibleDelivery(ctx context.Context, c Caller, id string) (db.Delivery, error) {
	d, err := s.Repo.GetDelivery(ctx, db.AnyApp(), id)
	if err == nil && d.AppID != c.App.ID {
		_, err = s.Repo.GetEvent(ctx, c.scope(), d.EventID)
	}
	if err == nil && d.AppID == c.App.ID && !c.sees(d.SubscriptionID.String) {
		err = db.ErrNotFound
	}
	return d, err
}

// ownDelivery loads a delivery for an action only its owner may take: another app gets
// NotFound, the event's publisher Forbidden with what it may do instead.
func (s *Service) ownDelivery(ctx context.Context, c Caller, id, action string) (db.Delivery, error) {
	if err := c.mayChange(); err != nil {
		return db.Delivery{}, err
	}
	d, err := s.visibleDelivery(ctx, c, id)
	if err == nil && d.AppID != c.App.ID {
		return db.Delivery{}, forbidden("only the app that owns delivery %s may %s it; "+
			"as the publisher of its event you may replay the whole event (POST /v1/events/%s/replay)",
			d.ID, action, url.PathEscape(delivery.ClientEventID(d.EventID)))
	}
	return d, err
}

// RetryDelivery makes a pending delivery's next attempt now.
func (s *Service) RetryDelivery(ctx context.Context, c Caller, id, reason string) (db.Delivery, error) {
	return s.signalDelivery(ctx, c, id, delivery.SignalRetry, "retry", reason)
}

// CancelDelivery ends a pending delivery as cancelled.
func (s *Service) CancelDelivery(ctx context.Context, c Caller, id, reason string) (db.Delivery, error) {
	return s.signalDelivery(ctx, c, id, delivery.SignalCancel, "cancel", reason)
}

func (s *Service) signalDelivery(ctx context.Context, c Caller, id, signal, action, reason string) (db.Delivery, error) {
	d, err := s.ownDelivery(ctx, c, id, action)
	if err != nil {
		return db.Delivery{}, err
	}
	if d.Status != delivery.StatusPending {
		return db.Delivery{}, conflict("delivery is %s; replay it instead (POST /v1/deliveries/%s/replay)", d.Status, d.ID)
	}
	err = s.Engine.SignalDelivery(ctx, d.WorkflowID, signal, reason)
	if errors.Is(err, engine.ErrNotRunning) {
		return db.Delivery{}, conflict("delivery is making its first attempt; try again in a moment")
	}
	return d, err
}

// ReplayDelivery sends a finished delivery again as a new attempt series, and returns the
// replay's delivery.
func (s *Service) ReplayDelivery(ctx context.Context, c Caller, id string) (db.Delivery, error) {
	d, err := s.ownDelivery(ctx, c, id, "replay")
	if err != nil {
		return db.Delivery{}, err
	}
	if d.Status == delivery.StatusPending {
		return db.Delivery{}, conflict("delivery is still pending; cancel or retry it instead")
	}
	ev, err := s.Repo.GetEvent(ctx, db.AnyApp(), d.EventID)
	if err != nil {
		return db.Delivery{}, err
	}
	nd, in, err := s.prepareReplay(ctx, ev, d, "")
	if err != nil {
		return db.Delivery{}, err
	}
	if err := s.Engine.StartDelivery(ctx, in); err != nil {
		err = fmt.Errorf("start replay %s: %w", nd.ID, err)
		s.abandonReplays([]workflows.DeliveryInput{in}, err)
		return db.Delivery{}, err
	}
	return nd, nil
}

// prepareReplay creates a replay's row and the input of its DeliveryWorkflow; group names the
// workflow that waits for the replay to end ("" for none).
func (s *Service) prepareReplay(ctx context.Context, ev db.Event, d db.Delivery, group string) (db.Delivery, workflows.DeliveryInput, error) {
	pol, err := s.PolicyOf(ctx, d)
	if err != nil {
		return db.Delivery{}, workflows.DeliveryInput{}, err
	}
	nd, r, err := s.Repo.PrepareReplay(ctx, d, group, pol)
	if err != nil {
		return db.Delivery{}, workflows.DeliveryInput{}, err
	}
	return nd, engine.ReplayInput(delivery.ReplayStart{Retry: r, EventID: d.EventID, EventType: ev.Type, Topic: ev.Topic, Replay: nd.Replay}), nil
}

// PolicyOf is the retry policy a delivery's attempts follow: its subscription's, or the defaults
// for a one-off callback.
func (s *Service) PolicyOf(ctx context.Context, d db.Delivery) (delivery.Policy, error) {
	if !d.SubscriptionID.Valid {
		return delivery.PolicyFor(s.Config, db.RetryPolicy{}), nil
	}
	sub, err := s.Repo.GetSubscription(ctx, db.AnyApp(), d.SubscriptionID.String)
	if err != nil {
		return delivery.Policy{}, err
	}
	return delivery.PolicyFor(s.Config, sub.RetryPolicy), nil
}

// abandonReplays ends replays whose workflow could not start, so that no pending row waits for a
// workflow that does not exist (the caller was told the replay failed and may ask again). If this
// fails too, the delivery reconciler finds them.
func (s *Service) abandonReplays(ins []workflows.DeliveryInput, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range ins {
		if _, err := s.Repo.FinishDelivery(ctx, in.DeliveryID, delivery.StatusCancelled, "replay not started: "+cause.Error(), 0, false); err != nil {
			s.Log.Warn("replay left pending for the reconciler", "delivery_id", in.DeliveryID, "error", err)
		}
	}
}

// MaxEventReplay is the most targets a whole-event replay covers: the replays travel in the
// ReplayWorkflow's input, which stays far below Temporal's 2 MB.
const MaxEventReplay = 2000

// EventReplay is what a whole-event replay started.
type EventReplay struct {
	RequestID string
	Event     db.Event
	Replays   []db.Delivery // the new deliveries
	Skipped   []Skipped     // targets not replayed, and why
}

// Skipped is a delivery a replay left alone.
type Skipped struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// ReplayEvent replays the latest delivery to each target of the caller's event (its client id),
// in one ReplayWorkflow that calls callbackURL ("" for none) once all have ended.
func (s *Service) ReplayEvent(ctx context.Context, c Caller, eventID, callbackURL string) (EventReplay, error) {
	if err := c.mayChange(); err != nil {
		return EventReplay{}, err
	}
	if callbackURL != "" {
		if err := s.CheckTarget(ctx, "callbackUrl", callbackURL); err != nil {
			return EventReplay{}, err
		}
	}
	ev, err := s.Repo.GetEventByClientID(ctx, c.App.ID, eventID)
	if err != nil {
		return EventReplay{}, err
	}
	// Counted before anything is read, and only as far as the limit: an event with 50,000
	// deliveries is refused after reading 2,001 index entries, not 50,000 rows.
	n, err := s.Repo.CountEventTargets(ctx, ev.ID, MaxEventReplay+1)
	if err != nil {
		return EventReplay{}, err
	}
	if n > MaxEventReplay {
		return EventReplay{}, &Error{Kind: Unprocessable, Reason: fmt.Sprintf("the event has more than %d targets; a whole-event replay takes at most %d "+
			"(replay deliveries one by one: POST /v1/deliveries/{id}/replay)", MaxEventReplay, MaxEventReplay)}
	}
	latest, err := s.Repo.LatestDeliveries(ctx, ev.ID, MaxEventReplay)
	if err != nil {
		return EventReplay{}, err
	}
	out := EventReplay{RequestID: "req_" + uuid.NewString(), Event: ev, Replays: []db.Delivery{}, Skipped: []Skipped{}}
	workflowID := "replay/" + ev.ID + "/" + out.RequestID
	var inputs []workflows.DeliveryInput
	for _, d := range latest {
		if d.Status == delivery.StatusPending {
			out.Skipped = append(out.Skipped, Skipped{ID: d.ID, Reason: "still pending"})
			continue
		}
		nd, in, err := s.prepareReplay(ctx, ev, d, workflowID)
		if err != nil {
			return EventReplay{}, err
		}
		inputs = append(inputs, in)
		out.Replays = append(out.Replays, nd)
	}
	in := workflows.ReplayInput{RequestID: out.RequestID, EventID: ev.ClientID, AppID: c.App.ID, Deliveries: inputs}
	if callbackURL != "" {
		// The callback URL may hold a token: an operation row keeps it, out of the workflow's
		// history, until the callback is stored.
		params, _ := json.Marshal(db.ReplayParams{CallbackURL: callbackURL}) // a struct of a string always marshals
		if _, _, err := s.Repo.CreateOperation(ctx, db.Operation{ID: out.RequestID, AppID: c.App.ID,
			Kind: db.OperationReplay, Params: params, WorkflowID: workflowID}); err != nil {
			s.abandonReplays(inputs, err)
			return EventReplay{}, err
		}
		in.NotifyOperation, in.NotifyHost = out.RequestID, delivery.HostOf(callbackURL)
	}
	// One workflow runs the replays and makes the callback once all have ended.
	if err := s.Engine.StartReplayGroup(ctx, workflowID, in); err != nil {
		s.abandonReplays(inputs, err)
		if in.NotifyOperation != "" {
			if ferr := s.Repo.FinishOperation(context.WithoutCancel(ctx), out.RequestID, db.OperationCancelled); ferr != nil {
				s.Log.Warn("replay operation left running", "operation_id", out.RequestID, "error", ferr)
			}
		}
		return EventReplay{}, err
	}
	return out, nil
}

// RecoverRequest is the window of failed deliveries a recover replays: Since (RFC 3339,
// required), Until (RFC 3339, "" for now), narrowed to one subscription or event type.
type RecoverRequest struct {
	Since          string `json:"since"`
	Until          string `json:"until"`
	SubscriptionID string `json:"subscriptionId"`
	EventType      string `json:"eventType"`
}

// recoverClockSkew is how far in the future a recover's until may be: the caller's clock may be
// a little ahead of ours. The operation claims no delivery created after it anyway.
const recoverClockSkew = 5 * time.Second

// window checks a recover's window: since is required, until defaults to now and may not be in
// the future (past clock skew), and the window must not be empty.
func (req RecoverRequest) window(now time.Time) (db.RecoverWindow, error) {
	since, err := time.Parse(time.RFC3339Nano, req.Since)
	if err != nil {
		return db.RecoverWindow{}, invalid("since", "required, an RFC 3339 time")
	}
	until := now
	if req.Until != "" {
		if until, err = time.Parse(time.RFC3339Nano, req.Until); err != nil {
			return db.RecoverWindow{}, invalid("until", "an RFC 3339 time")
		}
	}
	if until.After(now.Add(recoverClockSkew)) {
		return db.RecoverWindow{}, invalid("until", "in the future (the server's clock says %s); "+
			"a recover replays failures that happened, leave until out to mean now", now.UTC().Format(time.RFC3339))
	}
	if !until.After(since) {
		return db.RecoverWindow{}, invalid("until", "must be after since")
	}
	if len(req.SubscriptionID) > 200 || len(req.EventType) > 200 {
		return db.RecoverWindow{}, invalid("subscriptionId, eventType", "at most 200 characters")
	}
	return db.RecoverWindow{Since: since.UTC(), Until: until.UTC(), SubscriptionID: req.SubscriptionID, EventType: req.EventType}, nil
}

// Recover replays every failed delivery of the caller's window in one workflow (Svix's "recover
// since"). The operation's id is made from the window, so asking twice for the same window
// returns the same operation (created is false); and each delivery is claimed by the first
// recover that replays it, so overlapping windows never replay one delivery twice.
func (s *Service) Recover(ctx context.Context, c Caller, req RecoverRequest) (op Operation, created bool, err error) {
	if err := c.mayChange(); err != nil {
		return Operation{}, false, err
	}
	w, err := req.window(time.Now())
	if err != nil {
		return Operation{}, false, err
	}
	if c.Subscriptions != nil && w.SubscriptionID == "" {
		return Operation{}, false, invalid("subscriptionId", "required: this session sees some subscriptions only")
	}
	if w.SubscriptionID != "" {
		if _, err := s.GetSubscription(ctx, c, w.SubscriptionID); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				return Operation{}, false, &Error{Kind: NotFound, Field: "subscriptionId", Reason: "no such subscription of yours", Err: err}
			}
			return Operation{}, false, err
		}
	}
	params, _ := json.Marshal(w) // a struct of strings and times always marshals
	id := operationID(c.App.ID, params)
	stored, created, err := s.Repo.CreateOperation(ctx, db.Operation{ID: id, AppID: c.App.ID, Kind: db.OperationRecover,
		Params: params, WorkflowID: workflows.RecoverWorkflowID(id)})
	if err != nil {
		return Operation{}, false, err
	}
	if stored.Status == db.OperationRunning {
		// Started on every call, not only the first: if the first start failed, this one makes it.
		if err := s.Engine.StartRecover(ctx, stored, w); err != nil {
			return Operation{}, false, fmt.Errorf("start recover %s: %w", id, err)
		}
	}
	op, err = s.operation(ctx, stored)
	return op, created, err
}

// operationID derives an operation's id from its app and parameters: the same window, the same id.
func operationID(appID string, params []byte) string {
	h := sha256.New()
	h.Write([]byte(appID))
	h.Write([]byte{0})
	h.Write(params)
	return "op_" + hex.EncodeToString(h.Sum(nil))[:24]
}

// Operation is an operation (a recover, a replay with a callback) and how its replays stand.
type Operation struct {
	db.Operation
	Window db.RecoverWindow
	// Replays counts the operation's replays by status.
	Replays map[string]int
}

func (s *Service) operation(ctx context.Context, op db.Operation) (Operation, error) {
	w, err := op.Window()
	if err != nil {
		return Operation{}, err
	}
	counts, err := s.Repo.GroupCounts(ctx, op.WorkflowID)
	if err != nil {
		return Operation{}, err
	}
	return Operation{Operation: op, Window: w, Replays: counts}, nil
}

// GetOperation reads one of the caller's operations.
func (s *Service) GetOperation(ctx context.Context, c Caller, id string) (Operation, error) {
	op, err := s.Repo.GetOperation(ctx, c.scope(), id)
	if err != nil {
		return Operation{}, err
	}
	return s.operation(ctx, op)
}

// CancelOperation asks a running operation to stop after its current page.
func (s *Service) CancelOperation(ctx context.Context, c Caller, id string) (Operation, error) {
	if err := c.mayChange(); err != nil {
		return Operation{}, err
	}
	op, err := s.Repo.GetOperation(ctx, c.scope(), id)
	if err != nil {
		return Operation{}, err
	}
	if op.Status != db.OperationRunning {
		return Operation{}, conflict("the operation is %s already", op.Status)
	}
	err = s.Engine.CancelOperation(ctx, op.WorkflowID, "cancelled by its app")
	if errors.Is(err, engine.ErrNotRunning) {
		return Operation{}, conflict("the operation is ending already")
	}
	if err != nil {
		return Operation{}, err
	}
	return s.operation(ctx, op)
}
