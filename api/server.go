// Package api is hookd's REST API (gin). Handlers validate input, call the repository and start or
// signal workflows; every error is an application/problem+json document.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/webhook"
)

// Engine is the part of the Temporal client the API uses.
type Engine interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// Server holds the API's dependencies.
type Server struct {
	Repo   *db.Repo
	Engine Engine
	Config config.Config
	Guard  *webhook.Guard
	Log    *slog.Logger
}

// Handler builds the gin router.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(s.recover, s.logRequests, s.limitBody)
	r.NoRoute(func(c *gin.Context) {
		problem(c, http.StatusNotFound, "no such endpoint: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)

	v1 := r.Group("/v1", s.authenticate)
	v1.POST("/apps", s.createApp)
	v1.GET("/apps", s.listApps)

	t := v1.Group("/topics/:topic", s.knownTopic)
	t.POST("/events", s.registerEvents)
	t.GET("/events", s.listRegisteredEvents)
	t.PUT("/events/:eventName", s.updateRegisteredEvent)
	t.DELETE("/events", s.bulkDeleteEvents)
	t.PATCH("/events", s.bulkDeleteEvents)
	t.POST("/events/bulk-delete", s.bulkDeleteEvents)

	v1.POST("/subscriptions", s.createSubscription)
	v1.GET("/subscriptions", s.listSubscriptions)
	v1.GET("/subscriptions/:id", s.getSubscription)
	v1.POST("/subscriptions/:id/enable", s.enableSubscription)
	v1.POST("/subscriptions/:id/disable", s.disableSubscription)
	v1.POST("/subscriptions/:id/rotate-secret", s.rotateSecret)
	v1.POST("/signatures/verify", s.verifySignature)

	v1.POST("/events", s.publishEvent)
	v1.GET("/events", s.pollEvents)
	v1.POST("/callbacks", s.createCallback)
	v1.GET("/deliveries", s.listDeliveries)
	v1.GET("/events/:id", s.getEvent)
	v1.POST("/events/:id/replay", s.replayEvent)
	v1.GET("/deliveries/:id", s.getDelivery)
	v1.POST("/deliveries/:id/cancel", s.cancelDelivery)
	v1.POST("/deliveries/:id/retry", s.retryDelivery)
	v1.POST("/deliveries/:id/replay", s.replayDelivery)
	return r
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func problem(c *gin.Context, status int, detail string) {
	c.Header("Content-Type", "application/problem+json")
	b, _ := json.Marshal(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	c.AbortWithStatus(status)
	c.Writer.Write(b)
}

// fail maps an error from the layers below to a status; unexpected ones are logged, not shown.
func (s *Server) fail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, db.ErrNotFound):
		problem(c, http.StatusNotFound, "not found")
	case errors.Is(err, db.ErrConflict):
		problem(c, http.StatusConflict, err.Error())
	case errors.Is(err, context.DeadlineExceeded) || isUnavailable(err):
		s.Log.Warn("dependency unavailable", "path", c.FullPath(), "error", err)
		c.Header("Retry-After", "5")
		problem(c, http.StatusServiceUnavailable, "a dependency is unavailable; try again shortly")
	default:
		s.Log.Error("request failed", "path", c.FullPath(), "error", err)
		problem(c, http.StatusInternalServerError, "internal error")
	}
}

// isUnavailable recognises a database or engine that cannot be reached.
func isUnavailable(err error) bool {
	msg := err.Error()
	for _, s := range []string{"connection refused", "bad connection", "the database system is", "Unavailable", "no such host", "i/o timeout", "EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// bind decodes a JSON body strictly: unknown fields and trailing data are refused.
func bind(c *gin.Context, v any) bool {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
			return false
		}
		problem(c, http.StatusBadRequest, "could not read body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(c, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return false
	}
	if dec.More() {
		problem(c, http.StatusBadRequest, "malformed JSON: data after the object")
		return false
	}
	return true
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("panic in handler", "path", c.FullPath(), "panic", r)
			problem(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.Log.Debug("http", "method", c.Request.Method, "path", c.FullPath(), "status", c.Writer.Status(), "duration", time.Since(start))
}

func (s *Server) limitBody(c *gin.Context) {
	// room for the envelope around the largest payload
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.Config.MaxPayloadBytes+16<<10)
	c.Next()
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{"postgres": "ok", "temporal": "ok"}
	status := http.StatusOK
	if err := s.Repo.Ping(ctx); err != nil {
		checks["postgres"], status = err.Error(), http.StatusServiceUnavailable
	}
	if _, err := s.Engine.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], status = err.Error(), http.StatusServiceUnavailable
	}
	c.JSON(status, checks)
}

func (s *Server) knownTopic(c *gin.Context) {
	t := c.Param("topic")
	for _, k := range s.Config.Topics {
		if k == t {
			c.Next()
			return
		}
	}
	problem(c, http.StatusNotFound, fmt.Sprintf("unknown topic %q; topics are %s", t, strings.Join(s.Config.Topics, ", ")))
}

func (s *Server) topicKnown(t string) bool {
	for _, k := range s.Config.Topics {
		if k == t {
			return true
		}
	}
	return false
}

// data wraps a response the way the OS1 API does: {"data": ...}.
func data(c *gin.Context, status int, v any) { c.JSON(status, gin.H{"data": v}) }
