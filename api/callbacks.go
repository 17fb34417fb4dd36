package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/usecase"
)

// callbackURL reads the per-request callback URL: ?callbackURL= or ?callbackUrl= (the Metamug
// form), else the body's callbackUrl (the OS1 form); "" for none. The use case checks it.
func callbackURL(c *gin.Context, fromBody string) string {
	if url := c.Query("callbackURL"); url != "" {
		return url
	}
	if url := c.Query("callbackUrl"); url != "" {
		return url
	}
	return fromBody
}

// validTarget checks a URL hookd will POST to; field names it in the problem it writes.
func (s *Server) validTarget(c *gin.Context, field, url string) bool {
	if err := s.cases().CheckTarget(c.Request.Context(), field, url); err != nil {
		s.fail(c, err)
		return false
	}
	return true
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
	ev, err := s.cases().StartCallback(c.Request.Context(), usecase.AppCaller(app), req.URL, req.EventType, req.Service, req.Data)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusAccepted, gin.H{"requestId": ev.ClientID, "links": gin.H{"self": "/v1/events/" + ev.ClientID,
		"temporalUi": s.uiLink(ev.WorkflowID)}})
}
