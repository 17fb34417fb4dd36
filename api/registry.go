package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/filter"
	"github.com/hookd/hookd/usecase"
)

// MaxBulkDelete is the OS1 limit on names per bulkDeleteEvents request.
const MaxBulkDelete = 25

// eventName is what an event type, an event name and an event id may be.
var eventName = usecase.NamePattern

type eventSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	EventType   string          `json:"eventType"`
	FilterLogic json.RawMessage `json:"filterLogic"`
	Type        string          `json:"type"`
	GetAPIPath  string          `json:"getApiPath"`
	// The event catalog's fields (catalog.go): absent keeps them on an update.
	Schema          json.RawMessage   `json:"schema"`
	Examples        []json.RawMessage `json:"examples"`
	Deprecated      *bool             `json:"deprecated"`
	DeprecationNote *string           `json:"deprecationNote"`
}

type registerRequest struct {
	GetAPIPath string      `json:"getApiPath"`
	Events     []eventSpec `json:"events"`
}

// validate checks one event and turns it into a row; where names the field for messages.
func (e eventSpec) validate(where string) (db.RegisteredEvent, error) {
	switch {
	case !eventName.MatchString(e.Name):
		return db.RegisteredEvent{}, fmt.Errorf("%s.name: 1 to 128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit", where)
	case !eventName.MatchString(e.EventType):
		return db.RegisteredEvent{}, fmt.Errorf("%s.eventType: 1 to 128 letters, digits, '_', '.', ':' or '-'", where)
	case len(e.Description) > 1000:
		return db.RegisteredEvent{}, fmt.Errorf("%s.description: at most 1000 characters", where)
	case len(e.Type) > 128:
		return db.RegisteredEvent{}, fmt.Errorf("%s.type: at most 128 characters", where)
	case len(e.GetAPIPath) > 1000 || (e.GetAPIPath != "" && !strings.HasPrefix(e.GetAPIPath, "/")):
		return db.RegisteredEvent{}, fmt.Errorf("%s.getApiPath: an absolute path such as /app/api/v2/users/{userId}", where)
	}
	row := db.RegisteredEvent{Name: e.Name, Description: e.Description, EventType: e.EventType, Type: e.Type, GetAPIPath: e.GetAPIPath}
	var err error
	if row.FilterLogic, err = usecase.CompiledFilter(e.FilterLogic); err != nil {
		return db.RegisteredEvent{}, fmt.Errorf("%s.filterLogic: %w", where, err)
	}
	if err := e.catalogFields(where, &row); err != nil {
		return db.RegisteredEvent{}, err
	}
	return row, nil
}

// registerEvents (registerEvents) declares events on a topic.
func (s *Server) registerEvents(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req registerRequest
	if !bind(c, &req) {
		return
	}
	if len(req.Events) == 0 || len(req.Events) > 100 {
		problem(c, http.StatusBadRequest, "events: 1 to 100 events per request")
		return
	}
	seen := map[string]bool{}
	rows := make([]db.RegisteredEvent, 0, len(req.Events))
	for i, e := range req.Events {
		if e.GetAPIPath == "" {
			e.GetAPIPath = req.GetAPIPath
		}
		row, err := e.validate(fmt.Sprintf("events[%d]", i))
		if err != nil {
			badRequest(c, err)
			return
		}
		if seen[row.Name] {
			problem(c, http.StatusBadRequest, fmt.Sprintf("events[%d].name: %q appears twice", i, row.Name))
			return
		}
		seen[row.Name] = true
		row.AppID, row.Topic = app.ID, c.Param("topic")
		rows = append(rows, row)
	}
	out, err := s.Repo.RegisterEvents(c.Request.Context(), rows)
	s.schemas.forget(app.ID)
	if errors.Is(err, db.ErrConflict) {
		problem(c, http.StatusConflict, "an event with this name is already registered on this topic: "+err.Error())
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusCreated, gin.H{"events": out})
}

// listRegisteredEvents (getPublisherEvents) pages through the caller's events on a topic.
// ?appId= lists another publisher's events instead, for subscribers.
func (s *Server) listRegisteredEvents(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	owner := app.ID
	if q := c.Query("appId"); q != "" {
		owner = q
	}
	afterName, afterID, err := usecase.DecodeCursor(c.Query("page"))
	if err != nil {
		problem(c, http.StatusBadRequest, "page: not a cursor returned by this endpoint")
		return
	}
	evs, err := s.Repo.ListRegisteredEvents(c.Request.Context(), owner, c.Param("topic"), afterName, afterID, limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	evs, next := usecase.TrimPage(evs, limit, func(e db.RegisteredEvent) string { return usecase.EncodeCursor(e.Name, e.ID) })
	if evs == nil {
		evs = []db.RegisteredEvent{}
	}
	data(c, http.StatusOK, gin.H{"events": evs, "meta": pageMeta(next)})
}

type updateRequest struct {
	Events []eventSpec `json:"events"`
}

// updateRegisteredEvent (updatePublisherEvents) replaces an event's fields. It takes the seed's
// {"events":[{...}]} form or a bare event object.
func (s *Server) updateRegisteredEvent(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var raw json.RawMessage
	if !bind(c, &raw) {
		return
	}
	var spec eventSpec
	var wrapped updateRequest
	if err := strictDecode(raw, &wrapped); err == nil && wrapped.Events != nil {
		if len(wrapped.Events) != 1 {
			problem(c, http.StatusBadRequest, "events: exactly one event per update")
			return
		}
		spec = wrapped.Events[0]
	} else if err := strictDecode(raw, &spec); err != nil {
		problem(c, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	old, err := s.Repo.GetRegisteredEvent(c.Request.Context(), app.ID, c.Param("topic"), c.Param("eventName"))
	if err != nil {
		s.fail(c, err)
		return
	}
	// Fields left out keep their values.
	if spec.Name == "" {
		spec.Name = old.Name
	}
	if spec.EventType == "" {
		spec.EventType = old.EventType
	}
	if spec.Description == "" {
		spec.Description = old.Description
	}
	if spec.Type == "" {
		spec.Type = old.Type
	}
	if spec.GetAPIPath == "" {
		spec.GetAPIPath = old.GetAPIPath
	}
	// A filter left out stays as it is, unchecked: one stored before today's limits must not
	// make every other change to the event fail.
	keepFilter := spec.FilterLogic == nil
	if err := spec.keepCatalog(old); err != nil {
		s.fail(c, err)
		return
	}
	row, err := spec.validate("event")
	if err != nil {
		badRequest(c, err)
		return
	}
	if keepFilter {
		row.FilterLogic = old.FilterLogic
	}
	row.AppID, row.Topic = app.ID, c.Param("topic")
	got, err := s.Repo.UpdateRegisteredEvent(c.Request.Context(), old.Name, row)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.schemas.forget(app.ID) // here at once; the other processes on the notification
	data(c, http.StatusOK, gin.H{"event": got})
}

type bulkDeleteRequest struct {
	Action      string   `json:"action"`
	Events      []string `json:"events"`
	CallbackURL string   `json:"callbackUrl"`
}

// bulkDeleteEvents deletes up to 25 events by name and says which were not there.
func (s *Server) bulkDeleteEvents(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req bulkDeleteRequest
	if !bind(c, &req) {
		return
	}
	if req.Action != "" && req.Action != "remove" {
		problem(c, http.StatusBadRequest, fmt.Sprintf("action: only \"remove\" is supported, got %q", req.Action))
		return
	}
	if len(req.Events) == 0 {
		problem(c, http.StatusBadRequest, "events: name at least one event")
		return
	}
	if len(req.Events) > MaxBulkDelete {
		problem(c, http.StatusBadRequest, fmt.Sprintf("events: at most %d events can be deleted per request, got %d", MaxBulkDelete, len(req.Events)))
		return
	}
	notify := callbackURL(c, req.CallbackURL)
	if notify != "" && !s.validTarget(c, "callbackUrl", notify) {
		return
	}
	removed, err := s.Repo.RemoveRegisteredEvents(c.Request.Context(), app.ID, c.Param("topic"), req.Events)
	s.schemas.forget(app.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	deleted := make([]string, 0, len(removed))
	gone := map[string]bool{}
	for _, e := range removed {
		deleted = append(deleted, e.Name)
		gone[e.Name] = true
		s.followUpRemoval(c.Request.Context(), e.ID)
	}
	notFound := []string{}
	for _, n := range req.Events {
		if !gone[n] {
			notFound = append(notFound, n)
		}
	}
	result := gin.H{"deleted": deleted, "notFound": notFound}
	if notify == "" {
		data(c, http.StatusOK, result)
		return
	}
	cb, err := s.cases().StartCallback(c.Request.Context(), usecase.AppCaller(app), notify, "events.bulkDeleted", c.Param("topic"), result)
	if err != nil {
		s.fail(c, err)
		return
	}
	result["requestId"] = cb.ClientID
	data(c, http.StatusAccepted, result)
}

// followUpRemoval starts the workflow that cancels the pending deliveries to the subscriptions of
// a removed event and tells their contacts. The removal is committed already: if the start fails,
// the reconciler starts it later.
func (s *Server) followUpRemoval(ctx context.Context, registeredEventID int64) {
	if err := s.gateway().StartRemoval(ctx, registeredEventID); err != nil {
		s.Log.Warn("removal follow-up left to the reconciler", "registered_event_id", registeredEventID, "error", err)
	}
}

// filterProblem is a problem that also says, as members of its own, where in a filter the
// request went wrong and which registration limit it broke ("size", "depth", "arrayLength",
// "iteratorNesting", "cost"; absent for a rule that is not valid JSON Logic).
type filterProblem struct {
	Problem
	Path  string `json:"path"`
	Limit string `json:"limit,omitempty"`
}

// badRequest answers 400 with err as the problem's detail, and a filter error's path and limit.
func badRequest(c *gin.Context, err error) {
	if exampleProblem(c, err) {
		return
	}
	var fe *filter.Error
	if !errors.As(err, &fe) {
		problem(c, http.StatusBadRequest, err.Error())
		return
	}
	c.Header("Content-Type", "application/problem+json")
	b, _ := json.Marshal(filterProblem{Problem: Problem{Type: "about:blank", Title: http.StatusText(http.StatusBadRequest),
		Status: http.StatusBadRequest, Detail: err.Error()}, Path: fe.Path, Limit: fe.Limit})
	c.AbortWithStatus(http.StatusBadRequest)
	c.Writer.Write(b)
}
