package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/tracing"
	"github.com/hookd/hookd/usecase"
)

type publishRequest struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	Data        json.RawMessage `json:"data"`
	CallbackURL string          `json:"callbackUrl"`
	// idGenerated: the request named no id, and hookd made one up.
	idGenerated bool
}

// keyedEventID is the id of an event published without an id but with an Idempotency-Key: made
// from the app, the key and the request's body, so that a retry of a publish whose answer was
// lost after its insert (the client hung up, and the 5xx released the key) finds the event the
// first try stored instead of storing a second one with another webhook-id. The body is in it
// because a key may be used again for another request once it expired (24 h): that one is a new
// event.
func keyedEventID(appID, key string, body []byte) string {
	h := sha256.New()
	h.Write([]byte("hookd idempotency-key\x00" + appID + "\x00" + key + "\x00"))
	h.Write(body)
	return "evt_" + hex.EncodeToString(h.Sum(nil))[:32]
}

// publishEvent stores an event and answers: its workflow starts from the outbox, so neither a
// burst nor an engine backlog or outage shows in the answer. 201 means this call created it; 200
// means the id was seen before and nothing new was started.
func (s *Server) publishEvent(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	req, err := decodePublish(body, s.Config.MaxPayloadBytes, s.topicKnown)
	if err != nil {
		requestProblem(c, err)
		return
	}
	if !s.validData(c, app.ID, req.Topic, req.Type, req.Data) { // a registered schema (catalog.go): 422, nothing stored
		return
	}
	if key := c.GetHeader("Idempotency-Key"); key != "" && req.idGenerated {
		req.ID = keyedEventID(app.ID, key, body)
	}
	data := []byte(req.Data)
	notify := callbackURL(c, req.CallbackURL)
	if notify != "" && !s.validTarget(c, "callbackUrl", notify) {
		return
	}
	ctx := c.Request.Context()
	key := delivery.EventKey(app.ID, req.ID)
	ev := db.Event{ID: key, ClientID: req.ID, AppID: app.ID, Topic: req.Topic, Type: req.Type, Payload: types.JSONText(data),
		WorkflowID: delivery.EventWorkflowID(key), NotifyURL: sql.NullString{String: notify, Valid: notify != ""},
		TraceParent: traceParent(ctx)}
	stored, inserted, err := s.Repo.InsertEvent(ctx, ev)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !inserted {
		prev, err := s.Repo.GetEventByClientID(ctx, app.ID, req.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		if !prev.DispatchedAt.Valid {
			// The first publish may have stored it and lost its answer before handing it over:
			// hand it over now rather than after the reconciler's grace (a second start is rejected).
			if err := s.dispatch(ctx, prev); err != nil {
				s.Log.Warn("replayed event not started; the reconciler will", "event_id", prev.ID, "error", err)
			}
		}
		c.Header("Idempotent-Replayed", "true")
		s.respondEvent(c, http.StatusOK, prev)
		return
	}
	if err := s.dispatch(ctx, stored); err != nil {
		s.fail(c, err)
		return
	}
	s.Metrics.AcceptedEvent(db.KindEvent)
	if notify != "" {
		// Accepted: the caller hears the outcome of every delivery at its callback URL.
		c.Header("Location", "/v1/events/"+url.PathEscape(stored.ClientID))
		s.respondEvent(c, http.StatusAccepted, stored)
		return
	}
	s.respondEvent(c, http.StatusCreated, stored)
}

// dispatch hands a stored event to the outbox, or starts its workflow now when no outbox runs. An
// event the outbox cannot take is stored all the same: the reconciler starts it.
func (s *Server) dispatch(ctx context.Context, ev db.Event) error {
	if s.Outbox == nil {
		return s.gateway().StartEvent(ctx, ev)
	}
	return s.Outbox.Dispatch(ctx, ev)
}

// traceParent is the publish's span, stored with the event so that its workflow, however late it
// starts, continues the publisher's trace.
func traceParent(ctx context.Context) sql.NullString {
	tp := tracing.TraceParent(ctx)
	return sql.NullString{String: tp, Valid: tp != ""}
}

func (s *Server) respondEvent(c *gin.Context, status int, ev db.Event) {
	data(c, status, s.eventView(ev))
}

// eventView is the public shape of an event, under the id its publisher gave it.
func (s *Server) eventView(ev db.Event) gin.H {
	v := gin.H{"id": ev.ClientID, "requestId": ev.ClientID, "type": ev.Type, "topic": ev.Topic, "data": ev.Payload,
		"receivedAt": ev.ReceivedAt, "workflowId": ev.WorkflowID,
		"links": gin.H{"self": "/v1/events/" + url.PathEscape(ev.ClientID), "temporalUi": s.uiLink(ev.WorkflowID)}}
	if id := tracing.TraceID(ev.TraceParent.String); id != "" {
		v["traceId"] = id
	}
	return v
}

// uiLink points at a workflow's page in the Temporal Web UI.
func (s *Server) uiLink(workflowID string) string {
	if workflowID == "" || s.Config.TemporalUIURL == "" {
		return ""
	}
	return s.Config.TemporalUIURL + "/namespaces/" + url.PathEscape(s.Config.TemporalNamespace) + "/workflows/" + url.PathEscape(workflowID)
}

// getEvent returns an event with the state of the first page of its deliveries (?pageSize=): in
// full for the deliveries the caller owns, their progress only for other apps' (the caller
// published the event). deliveriesMeta.nextPage continues at GET /v1/events/{id}/deliveries.
func (s *Server) getEvent(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	ev, ok := s.pathEvent(c, app.ID)
	if !ok {
		return
	}
	views, next, ok := s.eventDeliveryPage(c, app.ID, ev, db.TargetCursor{}, limit)
	if !ok {
		return
	}
	v := s.eventView(ev)
	v["dispatched"], v["deliveries"], v["deliveriesMeta"] = ev.DispatchedAt.Valid, views, pageMeta(next)
	v["links"].(gin.H)["deliveries"] = "/v1/events/" + url.PathEscape(ev.ClientID) + "/deliveries"
	data(c, http.StatusOK, v)
}

// listEventDeliveries pages through an event's deliveries (?page=&pageSize=), as getEvent shows
// them, in the order of their targets (subscription id, or callback URL) and replays.
func (s *Server) listEventDeliveries(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	var after db.TargetCursor
	if p := c.Query("page"); p != "" {
		target, replay, err := usecase.DecodeCursor(p)
		if err != nil || target == "" || replay < 0 || replay > math.MaxInt32 {
			problem(c, http.StatusBadRequest, "page: not a cursor returned by this endpoint")
			return
		}
		after = db.TargetCursor{Target: target, Replay: int(replay)}
	}
	ev, ok := s.pathEvent(c, app.ID)
	if !ok {
		return
	}
	views, next, ok := s.eventDeliveryPage(c, app.ID, ev, after, limit)
	if !ok {
		return
	}
	data(c, http.StatusOK, gin.H{"deliveries": views, "meta": pageMeta(next)})
}

// eventDeliveryPage reads one page of an event's deliveries as appID may see them, and the
// cursor of the next page ("" on the last); ok is false when a problem was written.
func (s *Server) eventDeliveryPage(c *gin.Context, appID string, ev db.Event, after db.TargetCursor, limit int) ([]gin.H, string, bool) {
	ds, err := s.Repo.EventDeliveryPage(c.Request.Context(), ev.ID, after, limit+1)
	if err != nil {
		s.fail(c, err)
		return nil, "", false
	}
	ds, next := usecase.TrimPage(ds, limit, func(d db.Delivery) string { return usecase.EncodeCursor(d.Target(), int64(d.Replay)) })
	views := make([]gin.H, 0, len(ds))
	for _, d := range ds {
		views = append(views, s.deliveryFor(appID, d))
	}
	return views, next, true
}

func (s *Server) deliveryView(d db.Delivery) gin.H {
	own, _ := usecase.OwnWorkflow(d)
	return s.deliveryViewOf(d, own)
}

// deliveryViewOf is deliveryView with whether the delivery has a workflow of its own: its link
// and workflowId point at that workflow, else the link points at its event's workflow and the
// delivery has no workflowId.
func (s *Server) deliveryViewOf(d db.Delivery, own bool) gin.H {
	b, _ := json.Marshal(d)
	var v gin.H
	_ = json.Unmarshal(b, &v)
	wf := d.WorkflowID
	if !own {
		wf = delivery.EventWorkflowID(d.EventID)
		delete(v, "workflowId") // its id was reserved, never used
	}
	var closed time.Time
	if d.FinishedAt.Valid {
		closed = d.FinishedAt.Time
	}
	v["links"] = s.historyLinks(wf, closed)
	return v
}

// historyLinks points at a workflow's history in the Web UI, or says when it was deleted: Temporal
// keeps a closed workflow for the namespace's retention only. closed is when the workflow closed
// (zero while it runs).
func (s *Server) historyLinks(workflowID string, closed time.Time) gin.H {
	if s.HistoryRetention > 0 && !closed.IsZero() {
		if gone := closed.Add(s.HistoryRetention); time.Now().After(gone) {
			return gin.H{"temporalUi": "", "temporalUiExpired": fmt.Sprintf(
				"the workflow history was deleted at %s (the namespace keeps closed workflows for %s); the ledger above is the record",
				gone.UTC().Format(time.RFC3339), s.HistoryRetention)}
		}
	}
	return gin.H{"temporalUi": s.uiLink(workflowID)}
}

// deliveryFor is what appID may see of a delivery: all of it as its owner (the subscriber, or the
// app that asked for a one-off callback), only its progress as the publisher of its event: never
// the subscriber's URL, errors, headers or response bodies.
func (s *Server) deliveryFor(appID string, d db.Delivery) gin.H {
	if d.AppID == appID {
		return s.deliveryView(d)
	}
	v := gin.H{"id": d.ID, "eventId": delivery.ClientEventID(d.EventID), "subscriberAppId": d.AppID, "replay": d.Replay,
		"status": d.Status, "attempts": d.Attempts, "createdAt": d.CreatedAt, "updatedAt": d.UpdatedAt}
	if d.LastStatus.Valid {
		v["lastStatus"] = d.LastStatus.Int32
	}
	if d.FinishedAt.Valid {
		v["finishedAt"] = d.FinishedAt.Time
	}
	return v
}

// attemptFor is what appID may see of one attempt: all of it as the delivery's owner, its number,
// state, timing and response status as the event's publisher.
func attemptFor(owner bool, a db.Attempt) any {
	if owner {
		return a
	}
	v := gin.H{"attempt": a.Attempt, "state": a.State, "startedAt": a.StartedAt, "durationMs": a.DurationMS}
	if a.ResponseStatus.Valid {
		v["responseStatus"] = a.ResponseStatus.Int32
	}
	return v
}

// decodePublish parses and validates a publish request. Everything it refuses is a *requestError.
func decodePublish(body []byte, maxPayload int64, topicKnown func(string) bool) (publishRequest, error) {
	var req publishRequest
	if err := strictDecode(body, &req); err != nil {
		return req, &requestError{http.StatusBadRequest, "malformed JSON: " + err.Error()}
	}
	switch {
	case req.ID != "" && !eventName.MatchString(req.ID):
		return req, &requestError{http.StatusBadRequest, "id: 1 to 128 letters, digits, '_', '.', ':' or '-'"}
	case req.Type == "":
		return req, &requestError{http.StatusBadRequest, "type: required"}
	case !eventName.MatchString(req.Type):
		return req, &requestError{http.StatusBadRequest, "type: 1 to 128 letters, digits, '_', '.', ':' or '-'"}
	case req.Topic != "" && !topicKnown(req.Topic):
		return req, &requestError{http.StatusNotFound, fmt.Sprintf("unknown topic %q", req.Topic)}
	}
	if req.ID == "" {
		req.ID, req.idGenerated = "evt_"+uuid.NewString(), true
	}
	req.Data = bytes.TrimSpace(req.Data)
	if len(req.Data) == 0 || string(req.Data) == "null" {
		req.Data = json.RawMessage("{}")
	}
	if int64(len(req.Data)) > maxPayload {
		return req, &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("data: larger than %d bytes", maxPayload)}
	}
	return req, nil
}

// pathEvent loads the caller's event named in the path; ok is false when a problem was written.
// Its deliveries are read a page at a time (eventDeliveryPage), never all at once.
func (s *Server) pathEvent(c *gin.Context, appID string) (db.Event, bool) {
	ev, err := s.Repo.GetEventByClientID(c.Request.Context(), appID, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return db.Event{}, false
	}
	return ev, true
}

// pollEvents lists the events the caller may see, in a stable order, for receivers that missed
// notifications: ?since=<RFC 3339 time or cursor>&topic=&eventType=&limit=.
func (s *Server) pollEvents(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	f := db.PollFilter{AppID: app.ID, Topic: c.Query("topic"), Type: c.Query("eventType"), Limit: limit}
	cursor := c.Query("cursor")
	if since := c.Query("since"); since != "" {
		if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
			f.Since = t
		} else if cursor == "" {
			cursor = since
		}
	}
	if cursor != "" {
		tx, seq, err := usecase.DecodeCursor(cursor)
		if err != nil || strings.TrimLeft(tx, "0123456789") != "" {
			problem(c, http.StatusBadRequest, "since: an RFC 3339 time or a cursor returned by this endpoint")
			return
		}
		f.AfterTxID, f.AfterSeq = tx, seq
	}
	evs, err := s.Repo.PollEvents(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(evs))
	next := cursor
	for _, e := range evs {
		next = usecase.EncodeCursor(e.TxID, e.Seq)
		out = append(out, gin.H{"id": e.ClientID, "type": e.Type, "topic": e.Topic, "kind": e.Kind, "data": e.Payload,
			"receivedAt": e.ReceivedAt, "cursor": next})
	}
	data(c, http.StatusOK, gin.H{"events": out, "meta": gin.H{"nextCursor": next, "hasMore": len(evs) == limit}})
}
