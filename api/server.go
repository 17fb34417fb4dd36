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
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/gin-gonic/gin"
	"github.com/lib/pq"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/metrics"
	"github.com/hookd/hookd/tracing"
	"github.com/hookd/hookd/webhook"
)

// Engine is the part of the Temporal client the API uses.
type Engine interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Server holds the API's dependencies.
type Server struct {
	Repo    *db.Repo
	Engine  Engine
	Config  config.Config
	Guard   *webhook.Guard
	Log     *slog.Logger
	Metrics *metrics.Metrics // nil: no /metrics
	// Tracer gets a span per request (nil or no-op: tracing off); a publish's span is stored with
	// its event and continues in the event's workflow.
	Tracer trace.TracerProvider
	// HistoryRetention is how long the Temporal namespace keeps closed workflows (0: unknown):
	// links to older histories are replaced by a note saying they are gone.
	HistoryRetention time.Duration
	out              *outbox // nil: publishes start their workflow before answering
	keys             keyCache
	schemas          schemaCache // compiled schemas of registered events (catalog.go)
	limits           limiters
	// starting counts workflow starts in flight, to tell a burst from a steady stream.
	starting atomic.Int64
}

// Handler builds the gin router.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if !tracing.Off(s.Tracer) {
		r.Use(otelgin.Middleware("hookd", otelgin.WithTracerProvider(s.Tracer), otelgin.WithPropagators(tracing.Propagator()),
			otelgin.WithGinFilter(func(c *gin.Context) bool { return strings.HasPrefix(c.FullPath(), "/v1/") })))
	}
	r.Use(s.recover, s.logRequests, s.limitBody)
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		problem(c, http.StatusMethodNotAllowed, c.Request.Method+" is not supported on "+c.Request.URL.Path)
	})
	r.NoRoute(func(c *gin.Context) {
		problem(c, http.StatusNotFound, "no such endpoint: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	if s.Metrics != nil {
		r.GET("/metrics", gin.WrapH(MetricsHandler(s.Config.MetricsToken, s.Metrics.Handler())))
	}
	s.docsRoutes(r)

	v1 := r.Group("/v1", s.authenticate)
	v1.POST("/apps", s.idempotent, s.createApp)
	v1.GET("/apps", s.listApps)
	v1.PATCH("/apps/:id", s.updateApp)
	v1.POST("/apps/:id/keys", s.idempotent, s.createKey)
	v1.GET("/apps/:id/keys", s.listKeys)
	v1.DELETE("/apps/:id/keys/:keyId", s.revokeKey)

	t := v1.Group("/topics/:topic", s.knownTopic)
	t.POST("/events", s.idempotent, s.registerEvents)
	t.GET("/events", s.listRegisteredEvents)
	t.PUT("/events/:eventName", s.updateRegisteredEvent)
	t.DELETE("/events", s.bulkDeleteEvents)
	t.PATCH("/events", s.bulkDeleteEvents)
	t.POST("/events/bulk-delete", s.bulkDeleteEvents)

	v1.POST("/subscriptions", s.idempotent, s.createSubscription)
	v1.GET("/subscriptions", s.listSubscriptions)
	v1.GET("/subscriptions/:id", s.getSubscription)
	v1.DELETE("/subscriptions/:id", s.deleteSubscription)
	v1.PATCH("/subscriptions/:id", s.updateSubscription)
	v1.POST("/subscriptions/:id/enable", s.enableSubscription)
	v1.POST("/subscriptions/:id/disable", s.disableSubscription)
	v1.POST("/subscriptions/:id/rotate-secret", s.rotateSecret)
	v1.POST("/subscriptions/:id/test", s.testSend)
	v1.GET("/event-types", s.listEventTypes)
	v1.POST("/signatures/verify", s.verifySignature)

	v1.POST("/events", s.idempotent, s.publishEvent)
	v1.GET("/events", s.pollEvents)
	v1.POST("/callbacks", s.idempotent, s.createCallback)
	v1.GET("/deliveries", s.listDeliveries)
	v1.GET("/events/:id", s.getEvent)
	v1.GET("/events/:id/deliveries", s.listEventDeliveries)
	v1.POST("/events/:id/replay", s.idempotent, s.replayEvent)
	v1.GET("/deliveries/:id", s.getDelivery)
	v1.POST("/deliveries/:id/cancel", s.cancelDelivery)
	v1.POST("/deliveries/:id/retry", s.retryDelivery)
	v1.POST("/deliveries/:id/replay", s.idempotent, s.replayDelivery)
	v1.POST("/deliveries/recover", s.idempotent, s.recoverDeliveries)
	v1.GET("/operations/:id", s.getOperation)
	v1.POST("/operations/:id/cancel", s.cancelOperation)
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
	var pqErr *pq.Error
	switch {
	case errors.As(err, &pqErr) && pqErr.Code.Class() == "22":
		// PostgreSQL refused the value itself (e.g. \u0000 in JSON): the caller's input, not our fault.
		problem(c, http.StatusBadRequest, "invalid data: "+pqErr.Message)
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
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "bad connection", "the database system is", "Unavailable", "no such host", "i/o timeout", "EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// requestError is input refused with a status and a message for the caller.
type requestError struct {
	Status int
	Detail string
}

func (e *requestError) Error() string { return e.Detail }

// requestProblem writes a requestError as a problem document.
func requestProblem(c *gin.Context, err error) {
	var re *requestError
	if errors.As(err, &re) {
		problem(c, re.Status, re.Detail)
		return
	}
	problem(c, http.StatusBadRequest, err.Error())
}

// readBody reads the (size-limited) request body.
func readBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
			return nil, false
		}
		problem(c, http.StatusBadRequest, "could not read body: "+err.Error())
		return nil, false
	}
	return body, true
}

// bind decodes a JSON body strictly: unknown fields and trailing data are refused.
func bind(c *gin.Context, v any) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	if err := strictDecode(body, v); err != nil {
		problem(c, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return false
	}
	return true
}

// strictDecode decodes one JSON value, refusing unknown fields and trailing data.
func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
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
	// The answer says what is down, never why: errors can name hosts, users and addresses. The log
	// has them.
	if err := s.Repo.Ping(ctx); err != nil {
		s.Log.Warn("readiness: postgres", "error", err)
		checks["postgres"], status = "unavailable", http.StatusServiceUnavailable
	}
	if _, err := s.Engine.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		s.Log.Warn("readiness: temporal", "error", err)
		checks["temporal"], status = "unavailable", http.StatusServiceUnavailable
	}
	c.JSON(status, checks)
}

func (s *Server) knownTopic(c *gin.Context) {
	if t := c.Param("topic"); !s.topicKnown(t) {
		problem(c, http.StatusNotFound, fmt.Sprintf("unknown topic %q; topics are %s", t, strings.Join(s.Config.Topics, ", ")))
		return
	}
	c.Next()
}

func (s *Server) topicKnown(t string) bool { return slices.Contains(s.Config.Topics, t) }

// data wraps a response the way the OS1 API does: {"data": ...}.
func data(c *gin.Context, status int, v any) { c.JSON(status, gin.H{"data": v}) }
