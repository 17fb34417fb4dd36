package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/usecase"
)

type createAppRequest struct {
	Name          string   `json:"name"`
	Permissions   []string `json:"permissions"`
	ContactEmail  string   `json:"contactEmail"`
	OperationsURL string   `json:"operationsUrl"`
}

// createApp (createAppConfig) registers an app and shows its API key and signing secret once.
func (s *Server) createApp(c *gin.Context) {
	var req createAppRequest
	if !bind(c, &req) {
		return
	}
	if len(req.Permissions) > 100 {
		problem(c, http.StatusBadRequest, "permissions: at most 100")
		return
	}
	for i, p := range req.Permissions {
		if strings.TrimSpace(p) == "" || len(p) > 200 {
			problem(c, http.StatusBadRequest, fmt.Sprintf("permissions[%d]: must be 1 to 200 characters", i))
			return
		}
	}
	if req.ContactEmail != "" && !usecase.ValidEmail(req.ContactEmail) {
		problem(c, http.StatusBadRequest, "contactEmail: not an e-mail address")
		return
	}
	if req.OperationsURL != "" && !s.validTarget(c, "operationsUrl", req.OperationsURL) {
		return
	}
	id := "app:" + uuid.NewString()
	if req.Name == "" {
		req.Name = "app " + id[4:12]
	}
	if len(req.Name) > 200 {
		problem(c, http.StatusBadRequest, "name: at most 200 characters")
		return
	}
	key, err := newKey()
	if err != nil {
		s.fail(c, err)
		return
	}
	secret, err := signature.NewSecret()
	if err != nil {
		s.fail(c, err)
		return
	}
	perms := req.Permissions
	if perms == nil {
		perms = []string{}
	}
	keyID := newKeyID()
	app, err := s.Repo.CreateApp(c.Request.Context(), db.App{ID: id, Name: req.Name, Permissions: pq.StringArray(perms),
		Secret: secret, ContactEmail: req.ContactEmail, OperationsURL: req.OperationsURL}, keyID, hashKey(key))
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusCreated, gin.H{"id": app.ID, "name": app.Name, "permissions": app.Permissions,
		"apiKey": key, "apiKeyId": keyID, "secret": secret, "operationsUrl": app.OperationsURL, "createdAt": app.CreatedAt})
}

// listApps lets subscribers discover publishers and what they publish: every app's name, id and
// registered events; its contact e-mail, permissions and creation time only to the app itself and
// the operator.
func (s *Server) listApps(c *gin.Context) {
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	apps, err := s.Repo.ListApps(c.Request.Context(), c.Query("page"), limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	apps, next := usecase.TrimPage(apps, limit, func(a db.App) string { return a.ID })
	ids := make([]string, len(apps))
	for i, a := range apps {
		ids[i] = a.ID
	}
	events, err := s.Repo.RegisteredEventsOf(c.Request.Context(), ids, 1000)
	if err != nil {
		s.fail(c, err)
		return
	}
	self := ""
	if app, ok := c.Get(ctxApp); ok {
		self = app.(db.App).ID
	}
	out := make([]gin.H, 0, len(apps))
	for _, a := range apps {
		evs := events[a.ID]
		if evs == nil {
			evs = []db.RegisteredEvent{}
		}
		v := gin.H{"id": a.ID, "name": a.Name, "events": evs}
		if a.ID == self || isOperator(c) {
			v["contactEmail"], v["permissions"], v["createdAt"], v["operationsUrl"] = a.ContactEmail, a.Permissions, a.CreatedAt, a.OperationsURL
		}
		out = append(out, v)
	}
	data(c, http.StatusOK, gin.H{"apps": out, "meta": pageMeta(next)})
}

type operationsRequest struct {
	OperationsURL *string `json:"operationsUrl"`
}

// updateApp changes what an app may change of itself: where its operational webhooks go
// (operationsUrl, "" to stop them). The app itself or the operator.
func (s *Server) updateApp(c *gin.Context) {
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
	app, err := s.Repo.SetOperationsURL(c.Request.Context(), c.Param("id"), *req.OperationsURL)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, gin.H{"id": app.ID, "name": app.Name, "permissions": app.Permissions, "contactEmail": app.ContactEmail,
		"operationsUrl": app.OperationsURL, "createdAt": app.CreatedAt})
}
