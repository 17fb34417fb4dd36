package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/activities"
)

// emit stores an operational webhook for appID (if it has an operations URL) and hands it to the
// outbox. The change it reports is made already, so a failure is logged, not answered.
func (s *Server) emit(ctx context.Context, appID, typ, key string, data any) {
	ev, inserted, err := activities.StoreOperational(ctx, s.Repo, appID, typ, key, data)
	if err == nil && inserted {
		err = s.dispatch(ctx, ev)
	}
	if err != nil {
		s.Log.Error("operational webhook not sent", "type", typ, "app_id", appID, "error", err)
	}
}

type operationsRequest struct {
	OperationsURL *string `json:"operationsUrl"`
}

// updateApp changes what an app may change of itself: where its operational webhooks go
// (operationsUrl, "" to stop them). The app itself or the operator.
func (s *Server) updateApp(c *gin.Context) {
	id, ok := appOwner(c, "an app changes only itself")
	if !ok {
		return
	}
	var req operationsRequest
	if !bind(c, &req) {
		return
	}
	if req.OperationsURL == nil {
		problem(c, http.StatusBadRequest, "operationsUrl: required (\"\" stops operational webhooks)")
		return
	}
	if *req.OperationsURL != "" && !s.validTarget(c, "operationsUrl", *req.OperationsURL) {
		return
	}
	app, err := s.Repo.SetOperationsURL(c.Request.Context(), id, *req.OperationsURL)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, gin.H{"id": app.ID, "name": app.Name, "permissions": app.Permissions, "contactEmail": app.ContactEmail,
		"operationsUrl": app.OperationsURL, "createdAt": app.CreatedAt})
}
