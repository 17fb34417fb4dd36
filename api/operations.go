package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/usecase"
)

// recoverDeliveries (POST /v1/deliveries/recover) replays every failed delivery of the caller's
// window in one operation (usecase.Service.Recover): the same window answers the same operation.
func (s *Server) recoverDeliveries(c *gin.Context) {
	var req usecase.RecoverRequest
	if !bind(c, &req) {
		return
	}
	op, created, err := s.cases().Recover(c.Request.Context(), callerOf(c), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !created {
		c.Header("Idempotent-Replayed", "true")
	}
	s.respondOperation(c, http.StatusAccepted, op)
}

// getOperation (GET /v1/operations/{id}) shows an operation and how its replays stand.
func (s *Server) getOperation(c *gin.Context) {
	op, err := s.cases().GetOperation(c.Request.Context(), callerOf(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondOperation(c, http.StatusOK, op)
}

// cancelOperation (POST /v1/operations/{id}/cancel) stops a running operation after its current
// page.
func (s *Server) cancelOperation(c *gin.Context) {
	op, err := s.cases().CancelOperation(c.Request.Context(), callerOf(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondOperation(c, http.StatusAccepted, op)
}

func (s *Server) respondOperation(c *gin.Context, status int, op usecase.Operation) {
	replays := gin.H{"total": 0, "pending": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
	total := 0
	for k, n := range op.Replays {
		replays[k] = n
		total += n
	}
	replays["total"] = total
	v := gin.H{"id": op.ID, "kind": op.Kind, "status": op.Status, "window": op.Window, "replays": replays,
		"workflowId": op.WorkflowID, "createdAt": op.CreatedAt,
		"links": gin.H{"self": "/v1/operations/" + op.ID, "temporalUi": s.uiLink(op.WorkflowID)}}
	if op.FinishedAt.Valid {
		v["finishedAt"] = op.FinishedAt.Time
	}
	data(c, status, v)
}
