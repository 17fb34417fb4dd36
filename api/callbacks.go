package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/db"
)

// callbackURL reads the per-request callback URL: ?callbackURL= or ?callbackUrl= (the Metamug
// form), else the body's callbackUrl (the OS1 form). ok is false when a problem was written.
func (s *Server) callbackURL(c *gin.Context, fromBody string) (url string, ok bool) {
	url = c.Query("callbackURL")
	if url == "" {
		url = c.Query("callbackUrl")
	}
	if url == "" {
		url = fromBody
	}
	if url == "" {
		return "", true
	}
	return url, s.validTarget(c, "callbackUrl", url)
}

// validTarget checks a URL hookd will POST to; field names it in the problem it writes.
func (s *Server) validTarget(c *gin.Context, field, url string) bool {
	if url == "" {
		problem(c, http.StatusBadRequest, field+": required")
		return false
	}
	if err := s.Guard.CheckURL(c.Request.Context(), url); err != nil {
		problem(c, http.StatusBadRequest, field+": "+err.Error())
		return false
	}
	return true
}

// startCallback stores a one-off callback and dispatches its workflow; it returns the stored event,
// whose ClientID is the request id the caller gets.
func (s *Server) startCallback(ctx context.Context, appID, url, eventType, service string, payload any) (db.Event, error) {
	ev, err := activities.CallbackEvent(activities.CallbackInput{ID: "req_" + uuid.NewString(), AppID: appID, URL: url,
		EventType: eventType, Service: service, Data: payload})
	if err != nil {
		return db.Event{}, err
	}
	ev.TraceParent = traceParent(ctx)
	if _, _, err := s.Repo.InsertEvent(ctx, ev); err != nil {
		return db.Event{}, err
	}
	if err := s.dispatch(ctx, ev); err != nil {
		return db.Event{}, err
	}
	s.Metrics.AcceptedEvent(db.KindCallback)
	return ev, nil
}

type callbackRequest struct {
	URL       string          `json:"url"`
	EventType string          `json:"eventType"`
	Service   string          `json:"service"`
	Data      json.RawMessage `json:"data"`
}

// createCallback hands a one-off callback over for durable delivery: one workflow, the same
// signing (with the caller's app secret), retries, ledger and failure e-mail as subscriptions.
func (s *Server) createCallback(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req callbackRequest
	if !bind(c, &req) {
		return
	}
	if !s.validTarget(c, "url", req.URL) {
		return
	}
	if !eventName.MatchString(req.EventType) {
		problem(c, http.StatusBadRequest, "eventType: 1 to 128 letters, digits, '_', '.', ':' or '-'")
		return
	}
	if len(req.Service) > 128 {
		problem(c, http.StatusBadRequest, "service: at most 128 characters")
		return
	}
	if len(req.Data) == 0 {
		req.Data = json.RawMessage("{}")
	}
	if int64(len(req.Data)) > s.Config.MaxPayloadBytes {
		problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("data: larger than %d bytes", s.Config.MaxPayloadBytes))
		return
	}
	ev, err := s.startCallback(c.Request.Context(), app.ID, req.URL, req.EventType, req.Service, req.Data)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusAccepted, gin.H{"requestId": ev.ClientID, "links": gin.H{"self": "/v1/events/" + ev.ClientID,
		"temporalUi": s.uiLink(ev.WorkflowID)}})
}
