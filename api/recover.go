package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/workflows"
)

type recoverRequest struct {
	Since          string `json:"since"`
	Until          string `json:"until"`
	SubscriptionID string `json:"subscriptionId"`
	EventType      string `json:"eventType"`
}

// recoverDeliveries replays every failed delivery of the caller's window in one workflow (Svix's
// "recover since"). The operation's id is made from the window, so asking twice for the same
// window answers the same operation; and each delivery is claimed by the first recover that
// replays it, so overlapping windows never replay one delivery twice.
func (s *Server) recoverDeliveries(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req recoverRequest
	if !bind(c, &req) {
		return
	}
	w, ok := recoverWindow(c, req, time.Now())
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if w.SubscriptionID != "" {
		if _, err := s.Repo.GetSubscription(ctx, db.OwnedBy(app.ID), w.SubscriptionID); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				problem(c, http.StatusNotFound, "subscriptionId: no such subscription of yours")
				return
			}
			s.fail(c, err)
			return
		}
	}
	params, _ := json.Marshal(w) // a struct of strings and times always marshals
	id := operationID(app.ID, params)
	op, created, err := s.Repo.CreateOperation(ctx, db.Operation{ID: id, AppID: app.ID, Kind: db.OperationRecover,
		Params: params, WorkflowID: workflows.RecoverWorkflowID(id)})
	if err != nil {
		s.fail(c, err)
		return
	}
	if op.Status == db.OperationRunning {
		// Started on every call, not only the first: if the first start failed, this one makes it.
		in := workflows.RecoverState{RecoverInput: activities.RecoverInput{OperationID: id, AppID: app.ID, Window: w,
			Group: op.WorkflowID}, SearchAttributes: s.Config.SearchAttributes}
		_, err := s.Engine.ExecuteWorkflow(ctx, workflows.RecoverStart(in, s.Config.TaskQueue), workflows.RecoverWorkflow, in)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if err != nil && !errors.As(err, &started) {
			s.fail(c, fmt.Errorf("start recover %s: %w", id, err))
			return
		}
	}
	if !created {
		c.Header("Idempotent-Replayed", "true")
	}
	s.respondOperation(c, http.StatusAccepted, op)
}

// recoverClockSkew is how far in the future a recover's until may be: the caller's clock may be
// a little ahead of ours. The operation claims no delivery created after it anyway.
const recoverClockSkew = 5 * time.Second

// recoverWindow checks a recover's window: since is required, until defaults to now and may not
// be in the future (past clock skew), and the window must not be empty.
func recoverWindow(c *gin.Context, req recoverRequest, now time.Time) (db.RecoverWindow, bool) {
	since, err := time.Parse(time.RFC3339Nano, req.Since)
	if err != nil {
		problem(c, http.StatusBadRequest, "since: required, an RFC 3339 time")
		return db.RecoverWindow{}, false
	}
	until := now
	if req.Until != "" {
		if until, err = time.Parse(time.RFC3339Nano, req.Until); err != nil {
			problem(c, http.StatusBadRequest, "until: an RFC 3339 time")
			return db.RecoverWindow{}, false
		}
	}
	if until.After(now.Add(recoverClockSkew)) {
		problem(c, http.StatusBadRequest, fmt.Sprintf("until: in the future (the server's clock says %s); "+
			"a recover replays failures that happened, leave until out to mean now", now.UTC().Format(time.RFC3339)))
		return db.RecoverWindow{}, false
	}
	if !until.After(since) {
		problem(c, http.StatusBadRequest, "until: must be after since")
		return db.RecoverWindow{}, false
	}
	if len(req.SubscriptionID) > 200 || len(req.EventType) > 200 {
		problem(c, http.StatusBadRequest, "subscriptionId, eventType: at most 200 characters")
		return db.RecoverWindow{}, false
	}
	return db.RecoverWindow{Since: since.UTC(), Until: until.UTC(), SubscriptionID: req.SubscriptionID, EventType: req.EventType}, true
}

// operationID derives an operation's id from its app and parameters: the same window, the same id.
func operationID(appID string, params []byte) string {
	h := sha256.New()
	h.Write([]byte(appID))
	h.Write([]byte{0})
	h.Write(params)
	return "op_" + hex.EncodeToString(h.Sum(nil))[:24]
}

// getOperation shows an operation and how its replays stand.
func (s *Server) getOperation(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	op, err := s.Repo.GetOperation(c.Request.Context(), db.OwnedBy(app.ID), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondOperation(c, http.StatusOK, op)
}

// cancelOperation signals a running operation to stop after its current page.
func (s *Server) cancelOperation(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	op, err := s.Repo.GetOperation(ctx, db.OwnedBy(app.ID), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if op.Status != db.OperationRunning {
		problem(c, http.StatusConflict, "the operation is "+op.Status+" already")
		return
	}
	err = s.Engine.SignalWorkflow(ctx, op.WorkflowID, "", workflows.SignalCancel, workflows.SignalPayload{Reason: "cancelled by its app"})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		problem(c, http.StatusConflict, "the operation is ending already")
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.respondOperation(c, http.StatusAccepted, op)
}

func (s *Server) respondOperation(c *gin.Context, status int, op db.Operation) {
	w, err := op.Window()
	if err != nil {
		s.fail(c, err)
		return
	}
	counts, err := s.Repo.GroupCounts(c.Request.Context(), op.WorkflowID)
	if err != nil {
		s.fail(c, err)
		return
	}
	replays := gin.H{"total": 0, "pending": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
	total := 0
	for k, n := range counts {
		replays[k] = n
		total += n
	}
	replays["total"] = total
	v := gin.H{"id": op.ID, "kind": op.Kind, "status": op.Status, "window": w, "replays": replays,
		"workflowId": op.WorkflowID, "createdAt": op.CreatedAt,
		"links": gin.H{"self": "/v1/operations/" + op.ID, "temporalUi": s.uiLink(op.WorkflowID)}}
	if op.FinishedAt.Valid {
		v["finishedAt"] = op.FinishedAt.Time
	}
	data(c, status, v)
}
