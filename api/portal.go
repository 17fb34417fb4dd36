package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lib/pq"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/portal"
	"github.com/hookd/hookd/usecase"
)

// The subscriber portal (issue 29): its pages under /portal/ (package portal), and the endpoints
// with which an app (or the operator) opens sessions for its customers, lists and revokes them,
// reads their audit log and sets how the portal looks and where it may be framed.

// portalRoutes mounts the portal and its management endpoints (the app the path names, or the
// operator).
func (s *Server) portalRoutes(r *gin.Engine, v1 *gin.RouterGroup) {
	ps := v1.Group("/apps/:id", requireSelfOrOperator("an app manages only its own portal"))
	ps.POST("/portal-sessions", s.createPortalSession)
	ps.GET("/portal-sessions", s.listPortalSessions)
	ps.DELETE("/portal-sessions", s.revokePortalSessions)
	ps.DELETE("/portal-sessions/:sessionId", s.revokePortalSessions)
	ps.GET("/portal-audit", s.listPortalAudit)
	ps.GET("/portal-settings", s.getPortalSettings)
	ps.PUT("/portal-settings", s.putPortalSettings)

	page := func(c *gin.Context) {
		h, err := s.portalHandler()
		if err != nil {
			s.fail(c, err)
			return
		}
		h.ServeHTTP(c.Writer, c.Request)
	}
	r.GET(portal.Prefix+"/*path", page)
	r.POST(portal.Prefix+"/*path", page)
	r.GET(portal.Prefix, func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, portal.Prefix+"/") })
}

// portalState is the portal's handler, built on first use.
type portalState struct {
	once sync.Once
	h    *portal.Handler
	err  error
}

func (s *Server) portalHandler() (*portal.Handler, error) {
	s.portal.once.Do(func() {
		s.portal.h, s.portal.err = portal.New(portal.Deps{Repo: s.Repo, Config: s.Config, Guard: s.Guard, Log: s.Log,
			UseCases: s.UseCases()})
	})
	return s.portal.h, s.portal.err
}

type portalSessionRequest struct {
	ReadOnly        bool     `json:"readOnly"`
	SubscriptionIDs []string `json:"subscriptionIds"`
	LifetimeSeconds int      `json:"lifetimeSeconds"`
}

func portalSessionView(ps db.PortalSession) gin.H {
	v := gin.H{"id": ps.ID, "appId": ps.AppID, "readOnly": ps.ReadOnly, "lifetimeSeconds": ps.LifetimeS,
		"createdBy": ps.CreatedBy, "createdAt": ps.CreatedAt, "expiresAt": ps.ExpiresAt}
	if ps.SubscriptionIDs != nil {
		v["subscriptionIds"] = []string(ps.SubscriptionIDs)
	}
	state := "unopened"
	switch {
	case ps.RevokedAt.Valid:
		state = "revoked"
		v["revokedAt"] = ps.RevokedAt.Time
	case ps.ExpiresAt.Before(time.Now()):
		state = "expired"
	case ps.OpenedAt.Valid:
		state = "open"
	}
	if ps.OpenedAt.Valid {
		v["openedAt"] = ps.OpenedAt.Time
	}
	v["state"] = state
	return v
}

// createPortalSession opens a session for the app's customer: a single-use link, valid for
// portal.LinkTTL, that signs its opener in for lifetimeSeconds (7 days by default).
func (s *Server) createPortalSession(c *gin.Context) {
	appID := c.Param("id")
	var req portalSessionRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.Repo.GetApp(ctx, appID); err != nil {
		s.fail(c, err)
		return
	}
	by := "app"
	if isOperator(c) {
		by = "operator"
	}
	var ids []string
	if req.SubscriptionIDs != nil {
		ids = req.SubscriptionIDs
	}
	ps, token, err := portal.CreateSession(ctx, s.Repo, portal.SessionRequest{AppID: appID, ReadOnly: req.ReadOnly,
		SubscriptionIDs: ids, Lifetime: time.Duration(req.LifetimeSeconds) * time.Second, CreatedBy: by})
	var ue *portal.UserError
	if errors.As(err, &ue) {
		problem(c, ue.Status, ue.Message)
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	detail := "by " + by
	if ps.ReadOnly {
		detail += ", read-only"
	}
	if ps.SubscriptionIDs != nil {
		detail += ", for " + strings.Join(ps.SubscriptionIDs, " ")
	}
	s.portalAudit(c, appID, ps.ID, "session.create", detail)
	v := portalSessionView(ps)
	v["url"] = portal.LinkURL(s.publicBase(c), token) // shown once: only its hash is kept
	v["urlExpiresAt"] = ps.TokenExpiresAt
	data(c, http.StatusCreated, v)
}

// publicBase is the origin links point at: HOOKD_PUBLIC_URL, else the request's own.
func (s *Server) publicBase(c *gin.Context) string {
	if s.Config.PublicURL != "" {
		return strings.TrimRight(s.Config.PublicURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// listPortalSessions lists the app's sessions, newest first (paged).
func (s *Server) listPortalSessions(c *gin.Context) {
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	var after time.Time
	var afterID string
	if p := c.Query("page"); p != "" {
		id, nanos, err := usecase.DecodeCursor(p)
		if err != nil {
			problem(c, http.StatusBadRequest, "page: not a cursor returned by this endpoint")
			return
		}
		after, afterID = time.Unix(0, nanos), id
	}
	rows, err := s.Repo.PortalSessions(c.Request.Context(), c.Param("id"), after, afterID, limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	rows, next := usecase.TrimPage(rows, limit, func(ps db.PortalSession) string { return usecase.EncodeCursor(ps.ID, ps.CreatedAt.UnixNano()) })
	out := make([]gin.H, 0, len(rows))
	for _, ps := range rows {
		out = append(out, portalSessionView(ps))
	}
	data(c, http.StatusOK, gin.H{"sessions": out, "meta": pageMeta(next)})
}

// revokePortalSessions ends one session, or every live one of the app: at once, in every API
// process (each portal request reads its session from the database).
func (s *Server) revokePortalSessions(c *gin.Context) {
	n, err := s.Repo.RevokePortalSessions(c.Request.Context(), c.Param("id"), c.Param("sessionId"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if n > 0 {
		by := "by app"
		if isOperator(c) {
			by = "by operator"
		}
		action := "session.revoke"
		if c.Param("sessionId") == "" {
			action, by = "session.revoke-all", by+", "+strconv.FormatInt(n, 10)+" sessions"
		}
		s.portalAudit(c, c.Param("id"), c.Param("sessionId"), action, by)
	}
	if c.Param("sessionId") != "" {
		c.Status(http.StatusNoContent)
		return
	}
	data(c, http.StatusOK, gin.H{"revoked": n})
}

// portalAudit records a change to the app's portal sessions made through the API. The change is
// made already: a failure to record it is logged, not answered.
func (s *Server) portalAudit(c *gin.Context, appID, sessionID, action, detail string) {
	err := s.Repo.AddPortalAudit(context.WithoutCancel(c.Request.Context()), db.PortalAudit{AppID: appID, SessionID: sessionID,
		Action: action, Target: sessionID, Detail: detail})
	if err != nil {
		s.Log.Error("portal audit not recorded", "app_id", appID, "action", action, "error", err)
	}
}

// listPortalAudit lists what was done in the app's portal sessions, newest first.
func (s *Server) listPortalAudit(c *gin.Context) {
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	var before int64
	if p := c.Query("page"); p != "" {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n <= 0 {
			problem(c, http.StatusBadRequest, "page: not a cursor returned by this endpoint")
			return
		}
		before = n
	}
	rows, err := s.Repo.PortalAuditLog(c.Request.Context(), c.Param("id"), before, limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	rows, next := usecase.TrimPage(rows, limit, func(a db.PortalAudit) string { return strconv.FormatInt(a.ID, 10) })
	if rows == nil {
		rows = []db.PortalAudit{}
	}
	data(c, http.StatusOK, gin.H{"entries": rows, "meta": pageMeta(next)})
}

type portalTheme struct {
	AccentColor string `json:"accentColor"`
	LogoURL     string `json:"logoUrl"`
	Mode        string `json:"mode"`
}

type portalSettingsBody struct {
	FrameAncestors []string    `json:"frameAncestors"`
	Theme          portalTheme `json:"theme"`
}

func portalSettingsView(ps db.PortalSettings) portalSettingsBody {
	fa := []string(ps.FrameAncestors)
	if fa == nil {
		fa = []string{}
	}
	return portalSettingsBody{FrameAncestors: fa, Theme: portalTheme{AccentColor: ps.AccentColor, LogoURL: ps.LogoURL, Mode: ps.Mode}}
}

func (s *Server) getPortalSettings(c *gin.Context) {
	ctx := c.Request.Context()
	if _, err := s.Repo.GetApp(ctx, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	ps, err := s.Repo.GetPortalSettings(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, portalSettingsView(ps))
}

// putPortalSettings replaces the app's portal settings: where it may be framed (frame-ancestors,
// none by default) and its theme.
func (s *Server) putPortalSettings(c *gin.Context) {
	var req portalSettingsBody
	if !bind(c, &req) {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.Repo.GetApp(ctx, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	if req.Theme.Mode == "" {
		req.Theme.Mode = "light"
	}
	ps := db.PortalSettings{AppID: c.Param("id"), FrameAncestors: pq.StringArray(req.FrameAncestors), AccentColor: req.Theme.AccentColor,
		LogoURL: req.Theme.LogoURL, Mode: req.Theme.Mode}
	if err := portal.ValidSettings(ps); err != nil {
		problem(c, http.StatusBadRequest, err.Error())
		return
	}
	got, err := s.Repo.SetPortalSettings(ctx, ps)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, portalSettingsView(got))
}
